//go:build torture

package torture

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// member is one tar entry of a hand-made image: a header, and the body of
// a regular file.
type member struct {
	hdr  tar.Header
	body []byte
}

func dir(name string) member {
	return member{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}

func file(name, content string) member {
	return member{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))}, body: []byte(content)}
}

func symlink(name, target string) member {
	return member{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) member { //nolint:unparam // a tar member like its siblings: the case names it
	return member{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, Mode: 0o644}}
}

func chardev(name string, major, minor int64) member { //nolint:unparam // a tar member like its siblings: the case picks the device
	return member{hdr: tar.Header{Name: name, Typeflag: tar.TypeChar, Devmajor: major, Devminor: minor, Mode: 0o666}}
}

func blockdev(name string, major, minor int64) member {
	return member{hdr: tar.Header{Name: name, Typeflag: tar.TypeBlock, Devmajor: major, Devminor: minor, Mode: 0o660}}
}

func fifo(name string) member {
	return member{hdr: tar.Header{Name: name, Typeflag: tar.TypeFifo, Mode: 0o644}}
}

// manifest returns a minimal image manifest with extra fields merged in.
func manifest(t testing.TB, name string, extra map[string]any) []byte {
	t.Helper()
	m := map[string]any{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// labels is the manifest form of name=value pairs.
func labels(kv ...string) []map[string]string {
	var out []map[string]string
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, map[string]string{"name": kv[i], "value": kv[i+1]})
	}
	return out
}

// tarBytes writes the members as a tar, the manifest first.
func tarBytes(t testing.TB, manifest []byte, members []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	all := members
	if manifest != nil {
		all = append([]member{file("manifest", string(manifest))}, members...)
	}
	for _, m := range all {
		h := m.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if len(m.body) > 0 {
			if _, err := tw.Write(m.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeACI writes a gzip ACI of the manifest and members into dir and
// returns its path.
func writeACI(t testing.TB, dir, name string, manifest []byte, members []member) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, gzipBytes(t, tarBytes(t, manifest, members)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bigACI writes an image with one file of size bytes that compresses
// poorly, so that importing it takes a while and a kill lands inside.
func bigACI(t testing.TB, dir string, size int) string {
	t.Helper()
	big := make([]byte, size)
	x := uint32(2463534242)
	for i := range big {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		big[i] = byte(x) //nolint:gosec // G115: the low byte is the noise wanted
	}
	return writeACI(t, dir, "big.aci", manifest(t, "example.com/torture/big", nil),
		[]member{dir0(), {hdr: tar.Header{Name: "rootfs/big", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}, body: big}})
}

func dir0() member { return dir("rootfs/") }

// manyFilesACI writes an image of n small files in nested directories,
// unique per tag (so its tree is rendered anew): rendering it takes a
// while.
func manyFilesACI(t testing.TB, out, tag string, n int) string {
	t.Helper()
	ms := []member{dir0()}
	for d := range n/50 + 1 {
		ms = append(ms, dir(fmt.Sprintf("rootfs/d%02d/", d)))
	}
	for i := range n {
		ms = append(ms, file(fmt.Sprintf("rootfs/d%02d/f%04d", i/50, i), fmt.Sprintf("file %d of %s\n", i, tag)))
	}
	return writeACI(t, out, "many-"+tag+".aci", manifest(t, "example.com/torture/many", map[string]any{"labels": labels("tag", tag)}), ms)
}

// actoolBuild builds an ACI from a manifest and rootfs files with actool,
// the appc reference tool.
func actoolBuild(t testing.TB, dir, name string, manifest []byte, files map[string]string) string {
	t.Helper()
	layout := filepath.Join(dir, name+".layout")
	for p, content := range files {
		full := filepath.Join(layout, "rootfs", p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(layout, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layout, "manifest"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".aci")
	if b, err := exec.Command(actool(t.(*testing.T)), "build", "--overwrite", layout, out).CombinedOutput(); err != nil { //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		t.Fatalf("actool build %s: %v\n%s", name, err, b)
	}
	return out
}

// gzipBomb writes a gzip file that inflates to a valid image holding one
// file of size zero bytes (a multiple of 64 MiB), by repeating one
// compressed member: the file stays small whatever size is.
func gzipBomb(t testing.TB, dir string, size int64) string {
	t.Helper()
	const chunk = 64 << 20
	if size%chunk != 0 {
		t.Fatalf("bomb size %d is not a multiple of %d", size, chunk)
	}
	// The tar writer would refuse to close an entry whose body it did not
	// see, so the header is flushed without closing and the zeros and
	// the end of the archive are appended as gzip members of their own.
	var hb bytes.Buffer
	tw := tar.NewWriter(&hb)
	for _, m := range []member{file("manifest", string(manifest(t, "example.com/torture/bomb", nil))), dir0()} {
		h := m.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs/zero", Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	// WriteHeader wrote the header through; the body comes below.
	p := filepath.Join(dir, "bomb.aci")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	write := func(b []byte) {
		if _, err := f.Write(gzipBytes(t, b)); err != nil {
			t.Fatal(err)
		}
	}
	write(hb.Bytes())
	var zc bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zc, gzip.BestCompression)
	if _, err := io.CopyN(zw, zeroReader{}, chunk); err != nil {
		t.Fatal(err)
	}
	_ = zw.Close()
	for range size / chunk {
		if _, err := f.Write(zc.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	write(make([]byte, 1024)) // end of archive
	return p
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
