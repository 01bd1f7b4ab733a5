package store

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nosecone/nscn/store/index"
)

// testACI is an uncompressed ACI named name with one file.
func testACI(t *testing.T, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	manifest := fmt.Sprintf(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":%q}`, name)
	for _, e := range []struct {
		name, body string
		dir        bool
	}{{name: "manifest", body: manifest}, {name: "rootfs", dir: true}, {name: "rootfs/hello", body: name + "\n"}} {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.dir {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
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
	fresh, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Manifest(ctx, im.ID); err == nil {
		t.Error("a fresh Store found a manifest without its index")
	}
}
