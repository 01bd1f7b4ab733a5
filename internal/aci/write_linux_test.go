package aci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
)

// writeTree makes a tree with one entry of each kind Write handles: a
// directory, an executable, a private file, a hard link to it, a
// symlink, a FIFO and a socket (left out of the archive).
func writeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(dir, 0o700)) //nolint:gosec // G302: a private directory is what the test archives
	must(os.MkdirAll(filepath.Join(dir, "bin"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "bin/tool"), []byte("#!/bin/sh\n"), 0o700)) //nolint:gosec // G306: an executable is what the test archives
	must(os.WriteFile(filepath.Join(dir, "secret"), []byte("s3cret"), 0o600))
	must(os.Link(filepath.Join(dir, "secret"), filepath.Join(dir, "zlink")))
	must(os.Symlink("bin/tool", filepath.Join(dir, "tool")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o640))
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	must(err)
	t.Cleanup(func() { _ = l.Close() })
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, p := range []string{"bin/tool", "secret", "fifo", "bin", "."} {
		must(os.Chtimes(filepath.Join(dir, p), old, old))
	}
	return dir
}

// entry is what the tests compare of a tar entry.
type entry struct {
	Name    string
	Type    byte
	Mode    int64
	Owner   [2]int
	Link    string
	Content string
	Mtime   time.Time
}

func readEntries(t *testing.T, data []byte, gz bool) []entry {
	t.Helper()
	var r io.Reader = bytes.NewReader(data)
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	var out []entry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, Owner: [2]int{h.Uid, h.Gid}, Link: h.Linkname, Content: string(b), Mtime: h.ModTime})
	}
}

func TestWrite(t *testing.T) {
	dir := writeTree(t)
	me := [2]int{os.Getuid(), os.Getgid()}
	root := [2]int{0, 0}
	epoch := time.Unix(1700000000, 0)
	manifest := []byte(`{"acKind":"ImageManifest"}`)
	names := []string{"manifest", "rootfs/", "rootfs/bin/", "rootfs/bin/tool", "rootfs/fifo", "rootfs/secret", "rootfs/tool", "rootfs/zlink"}
	tests := []struct {
		name  string
		opts  WriteOptions
		owner [2]int
		modes []int64 // in the order of names
		mtime time.Time
	}{
		{
			name:  "as is",
			owner: me,
			modes: []int64{0o644, 0o700, 0o750, 0o700, 0o640, 0o600, 0o777, 0},
		},
		{
			name:  "owner root, gzip",
			opts:  WriteOptions{OwnerRoot: true, Gzip: true},
			owner: root,
			modes: []int64{0o644, 0o700, 0o750, 0o700, 0o640, 0o600, 0o777, 0},
		},
		{
			name:  "reproducible",
			opts:  WriteOptions{OwnerRoot: true, NormalizeModes: true, ModTime: epoch, Gzip: true, GzipLevel: gzip.BestCompression},
			owner: root,
			modes: []int64{0o644, 0o755, 0o755, 0o755, 0o644, 0o644, 0o777, 0o644},
			mtime: epoch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(context.Background(), &buf, manifest, dir, tt.opts); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got := readEntries(t, buf.Bytes(), tt.opts.Gzip)
			var gotNames []string
			for _, e := range got {
				gotNames = append(gotNames, e.Name)
			}
			if !reflect.DeepEqual(gotNames, names) {
				t.Fatalf("entries = %q, want %q (the socket left out)", gotNames, names)
			}
			for i, e := range got {
				if e.Name == "manifest" {
					if e.Content != string(manifest) || e.Owner != root {
						t.Errorf("manifest entry = %+v", e)
					}
				} else if e.Owner != tt.owner {
					t.Errorf("%s: owner %v, want %v", e.Name, e.Owner, tt.owner)
				}
				if e.Type != tar.TypeLink && e.Mode != tt.modes[i] {
					t.Errorf("%s: mode %o, want %o", e.Name, e.Mode, tt.modes[i])
				}
				if !tt.mtime.IsZero() && !e.Mtime.Equal(tt.mtime) {
					t.Errorf("%s: mtime %v, want %v", e.Name, e.Mtime, tt.mtime)
				}
				if tt.mtime.IsZero() && e.Name == "rootfs/secret" && e.Mtime.Year() != 2001 {
					t.Errorf("%s: mtime %v, want the file's own", e.Name, e.Mtime)
				}
			}
			byName := map[string]entry{}
			for _, e := range got {
				byName[e.Name] = e
			}
			if e := byName["rootfs/tool"]; e.Type != tar.TypeSymlink || e.Link != "bin/tool" {
				t.Errorf("symlink entry = %+v", e)
			}
			if e := byName["rootfs/zlink"]; e.Type != tar.TypeLink || e.Link != "rootfs/secret" {
				t.Errorf("hard link entry = %+v, want a link to rootfs/secret", e)
			}
			if e := byName["rootfs/secret"]; e.Content != "s3cret" {
				t.Errorf("secret content = %q", e.Content)
			}
			if e := byName["rootfs/fifo"]; e.Type != tar.TypeFifo {
				t.Errorf("fifo entry = %+v", e)
			}
		})
	}
}

// TestWriteReproducible: with ModTime, OwnerRoot and NormalizeModes, a
// touched or re-moded file leaves the archive byte for byte the same.
func TestWriteReproducible(t *testing.T) {
	dir := writeTree(t)
	opts := WriteOptions{Gzip: true, OwnerRoot: true, NormalizeModes: true, ModTime: time.Unix(0, 0)}
	var a, b bytes.Buffer
	if err := Write(context.Background(), &a, []byte("{}"), dir, opts); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "bin/tool"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "secret"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), &b, []byte("{}"), dir, opts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two archives of the same tree differ")
	}
}

// TestWriteRoundTrip: what Write packs, ReadManifest and ExtractRootfs
// read back: the same files, links and content.
func TestWriteRoundTrip(t *testing.T) {
	dir := writeTree(t)
	im := []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/roundtrip"}`)
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, im, dir, WriteOptions{Gzip: true}); err != nil {
		t.Fatal(err)
	}
	open := func() io.Reader {
		t.Helper()
		rc, c, err := Decompress(bytes.NewReader(buf.Bytes()), Decoders{})
		if err != nil {
			t.Fatalf("Decompress: %v", err)
		}
		t.Cleanup(func() { _ = rc.Close() })
		if c != Gzip {
			t.Fatalf("compression = %v, want gzip", c)
		}
		return rc
	}
	m, _, err := ReadManifest(open())
	if err != nil {
		t.Fatalf("ReadManifest: %v", err)
	}
	if m.Name.String() != "example.com/roundtrip" {
		t.Errorf("manifest name = %q", m.Name)
	}
	dest := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ExtractRootfs(context.Background(), open(), dest, ExtractOptions{}); err != nil {
		t.Fatalf("ExtractRootfs: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "secret")); err != nil || string(b) != "s3cret" { //nolint:gosec // G304: the test's own file
		t.Errorf("secret = %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dest, "tool")); err != nil || l != "bin/tool" {
		t.Errorf("symlink tool -> %q, %v", l, err)
	}
	a, err1 := os.Stat(filepath.Join(dest, "secret"))
	b, err2 := os.Stat(filepath.Join(dest, "zlink"))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Errorf("zlink is not a hard link of secret (%v, %v)", err1, err2)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "fifo")); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("fifo: %v, %v", fi, err)
	}
}

func TestWriteCancelled(t *testing.T) {
	dir := t.TempDir()
	for i := range 300 {
		if err := os.WriteFile(filepath.Join(dir, "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Write(ctx, io.Discard, []byte("{}"), dir, WriteOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestWriterAdd(t *testing.T) {
	tests := []struct {
		name      string
		hdr       tar.Header
		content   string
		wantClass error
	}{
		{name: "rootfs itself", hdr: tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{name: "a file", hdr: tar.Header{Name: "rootfs/etc/hostname", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}, content: "pod"},
		{name: "a second manifest", hdr: tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Size: 2}, content: "{}", wantClass: errdefs.ErrInvalidArgument},
		{name: "beside rootfs", hdr: tar.Header{Name: "rootfsx/a", Typeflag: tar.TypeReg}, wantClass: errdefs.ErrInvalidArgument},
		{name: "outside rootfs", hdr: tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg}, wantClass: errdefs.ErrInvalidArgument},
		{name: "short content", hdr: tar.Header{Name: "rootfs/short", Typeflag: tar.TypeReg, Size: 10}, content: "abc", wantClass: errdefs.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWriter(io.Discard, []byte("{}"), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			hdr := tt.hdr
			err = w.Add(&hdr, strings.NewReader(tt.content))
			if tt.wantClass == nil && err != nil {
				t.Fatalf("Add: %v", err)
			}
			if tt.wantClass != nil && !errors.Is(err, tt.wantClass) {
				t.Fatalf("Add = %v, want class %v", err, tt.wantClass)
			}
		})
	}
}
