package store

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/store/index"
)

// testACI is an uncompressed ACI named name with one file.
func testACI(t *testing.T, name string) []byte {
	t.Helper()
	manifest := fmt.Sprintf(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":%q}`, name)
	return packACI(t, []byte(manifest), "hello", name+"\n")
}

// packACI packs an uncompressed ACI of manifest with one file, the same
// bytes at every call.
func packACI(t *testing.T, manifest []byte, file, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	aw, err := aci.NewWriter(&buf, manifest, aci.WriteOptions{ModTime: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		h    tar.Header
		body string
	}{
		{tar.Header{Name: "rootfs", Mode: 0o755, Typeflag: tar.TypeDir}, ""},
		{tar.Header{Name: "rootfs/" + file, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}, body},
	} {
		if err := aw.Add(&e.h, strings.NewReader(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestMarkUsed: one call marks every image it names, and an unknown key
// changes none.
func TestMarkUsed(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, n := range []string{"example.com/a", "example.com/b", "example.com/c"} {
		im, err := s.Import(ctx, bytes.NewReader(testACI(t, n)), ImportOptions{})
		if err != nil {
			t.Fatalf("import %s: %v", n, err)
		}
		keys = append(keys, im.Key)
	}
	lastUsed := func(key string) time.Time {
		t.Helper()
		var im *index.Image
		if err := s.Index.View(ctx, func(tx *index.Tx) (err error) { im, err = tx.Image(key); return err }); err != nil {
			t.Fatal(err)
		}
		return im.LastUsed
	}
	before := lastUsed(keys[2])
	time.Sleep(2 * time.Millisecond)
	if err := s.MarkUsed(ctx, keys[0], keys[1]); err != nil {
		t.Fatalf("MarkUsed: %v", err)
	}
	a, b := lastUsed(keys[0]), lastUsed(keys[1])
	if !a.After(before) || !a.Equal(b) {
		t.Errorf("last used %v and %v, want both the same and after %v", a, b, before)
	}
	if got := lastUsed(keys[2]); !got.Equal(before) {
		t.Errorf("unnamed image marked: %v, was %v", got, before)
	}
	if err := s.MarkUsed(ctx, keys[2], "sha512-0000"); err == nil {
		t.Error("MarkUsed of an unknown key succeeded")
	}
	if got := lastUsed(keys[2]); !got.Equal(before) {
		t.Errorf("a failed MarkUsed changed an image: %v, was %v", got, before)
	}
}

// TestManifestRemembered: once a Store has read or imported an image, its
// manifest by ID or key needs no index transaction: it is served even with
// the index gone, which a fresh Store cannot do.
func TestManifestRemembered(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := s.Import(ctx, bytes.NewReader(testACI(t, "example.com/m")), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(s.Index.Path); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{im.ID, im.Key} {
		m, err := s.Manifest(ctx, ref)
		if err != nil || m.Name.String() != "example.com/m" {
			t.Errorf("Manifest(%s) = %v, %v", ref, m, err)
		}
	}
	a, _ := s.Manifest(ctx, im.ID)
	if b, _ := s.Manifest(ctx, im.ID); a == nil || a != b {
		t.Error("Manifest parsed the same image's manifest twice")
	}
	fresh, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Manifest(ctx, im.ID); err == nil {
		t.Error("a fresh Store found a manifest without its index")
	}
}

// chunkyReader returns data in reads of at most step bytes, then err.
type chunkyReader struct {
	data []byte
	step int
	err  error
}

func (r *chunkyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data[:min(r.step, len(r.data))])
	r.data = r.data[n:]
	return n, nil
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("disk full")
	}
	w.after--
	return len(p), nil
}

func TestCopyCtx(t *testing.T) {
	data := make([]byte, 3*copyBufSize+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	boom := errors.New("corrupt stream")
	tests := []struct {
		name    string
		size    int
		step    int
		srcErr  error // after the data; io.EOF for a clean end
		dst     io.Writer
		cancel  bool
		wantErr error
	}{
		{name: "empty", size: 0, step: 1, srcErr: io.EOF},
		{name: "small reads", size: 100_000, step: 777, srcErr: io.EOF},
		{name: "exactly one buffer", size: copyBufSize, step: 1 << 16, srcErr: io.EOF},
		{name: "several buffers", size: len(data), step: 300_000, srcErr: io.EOF},
		{name: "source fails half-way", size: 2*copyBufSize + 5, step: 1 << 18, srcErr: boom, wantErr: boom},
		{name: "destination fails", size: len(data), step: 1 << 20, srcErr: io.EOF, dst: &failingWriter{after: 1}, wantErr: errors.New("disk full")},
		{name: "canceled", size: len(data), step: 1 << 20, srcErr: io.EOF, cancel: true, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			var out bytes.Buffer
			dst := tt.dst
			if dst == nil {
				dst = &out
			}
			n, err := copyCtx(ctx, dst, &chunkyReader{data: data[:tt.size], step: tt.step, err: tt.srcErr})
			if tt.wantErr != nil {
				if err == nil || (!errors.Is(err, tt.wantErr) && err.Error() != tt.wantErr.Error()) {
					t.Fatalf("copyCtx = %d, %v; want error %v", n, err, tt.wantErr)
				}
				return
			}
			if err != nil || n != int64(tt.size) || !bytes.Equal(out.Bytes(), data[:tt.size]) {
				t.Fatalf("copyCtx = %d, %v; copied %d bytes, equal %v", n, err, out.Len(), bytes.Equal(out.Bytes(), data[:tt.size]))
			}
		})
	}
}

// TestRemoteImage: the remote entry of a URL and its image come back
// together; a URL never fetched gives neither, and a remote whose image
// is gone gives the remote only.
func TestRemoteImage(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const url = "file:///images/a.aci"
	im, err := s.Import(ctx, bytes.NewReader(testACI(t, "example.com/a")), ImportOptions{
		Remote: &index.Remote{URL: url, ETag: "v1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	missing := "sha512-" + strings.Repeat("0", 64)
	if err := s.Index.Update(ctx, func(tx *index.Tx) error {
		return tx.PutRemote(&index.Remote{URL: "file:///images/gone.aci", ETag: "v1", Key: missing})
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		url               string
		wantRemote, wantI bool
	}{
		{name: "fetched", url: url, wantRemote: true, wantI: true},
		{name: "never fetched", url: "file:///images/b.aci"},
		{name: "image gone", url: "file:///images/gone.aci", wantRemote: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, got, err := s.RemoteImage(ctx, tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if (r != nil) != tt.wantRemote || (r != nil && r.ETag != "v1") {
				t.Errorf("remote = %+v, want one: %v", r, tt.wantRemote)
			}
			if (got != nil) != tt.wantI || (got != nil && got.Key != im.Key) {
				t.Errorf("image = %+v, want %s: %v", got, im.Key, tt.wantI)
			}
		})
	}
}
