package vm

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// cpioEntry is one entry read back by readCPIO.
type cpioEntry struct {
	name         string
	mode         uint32
	data         string
	rdevMaj, min uint32
}

// readCPIO parses a newc archive (or several concatenated) strictly: the
// magic, the 4-byte alignment of names and data, and a trailer at the
// end of each archive, the way the kernel's unpacker reads it.
func readCPIO(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	hex := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header field %d at %d: %v", i, off, err)
		}
		return uint32(v)
	}
	trailers := 0
	for off < len(b) {
		if off%4 != 0 {
			t.Fatalf("header at unaligned offset %d", off)
		}
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("bad magic %q at %d", b[off:off+6], off)
		}
		mode, size, rmaj, rmin, namesize := hex(1), hex(6), hex(9), hex(10), hex(11)
		name := string(b[off+110 : off+110+int(namesize)-1])
		if b[off+110+int(namesize)-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		off += 110 + int(namesize)
		off = (off + 3) &^ 3
		data := string(b[off : off+int(size)])
		off += int(size)
		off = (off + 3) &^ 3
		if name == "TRAILER!!!" {
			trailers++
			continue
		}
		out = append(out, cpioEntry{name: name, mode: mode, data: data, rdevMaj: rmaj, min: rmin})
	}
	if off != len(b) || trailers == 0 {
		t.Fatalf("archive ends at %d of %d with %d trailers", off, len(b), trailers)
	}
	return out
}

func TestCPIOWriter(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "prog")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho hi\n"), 0o750); err != nil { //nolint:gosec // G306: an executable, whose mode the archive must copy
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := newCPIOWriter(&buf, 0)
	steps := []error{
		w.Dir("/dev", 0o755),
		w.CharDev("/dev/console", 0o600, 5, 1),
		w.File("/usr/bin/prog", src, 0),
		w.File("/init", src, 0o755),
		w.Bytes("/etc/a", 0o644, []byte("12345")),
		w.Symlink("/bin/sh", "busybox"),
		w.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	got := readCPIO(t, buf.Bytes())
	want := []cpioEntry{
		{name: "dev", mode: 0o040755},
		{name: "dev/console", mode: 0o020600, rdevMaj: 5, min: 1},
		{name: "usr", mode: 0o040755},
		{name: "usr/bin", mode: 0o040755},
		{name: "usr/bin/prog", mode: 0o100750, data: "#!/bin/sh\necho hi\n"},
		{name: "init", mode: 0o100755, data: "#!/bin/sh\necho hi\n"},
		{name: "etc", mode: 0o040755},
		{name: "etc/a", mode: 0o100644, data: "12345"},
		{name: "bin", mode: 0o040755},
		{name: "bin/sh", mode: 0o120777, data: "busybox"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("archive:\n got %v\nwant %v", got, want)
	}
}

func TestCPIOWriterRejects(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "d")
	if err := os.Mkdir(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		add  func(w *cpioWriter) error
	}{
		{name: "root", add: func(w *cpioWriter) error { return w.Dir("/", 0o755) }},
		{name: "dot dot to root", add: func(w *cpioWriter) error { return w.Bytes("a/..", 0o644, nil) }},
		{name: "NUL", add: func(w *cpioWriter) error { return w.Symlink("a\x00b", "x") }},
		{name: "directory as file", add: func(w *cpioWriter) error { return w.File("/x", fifo, 0) }},
		{name: "missing file", add: func(w *cpioWriter) error { return w.File("/x", filepath.Join(dir, "none"), 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.add(newCPIOWriter(&buf, 0)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestCleanNameStaysBelowRoot(t *testing.T) {
	for in, want := range map[string]string{"/a/b": "a/b", "a//b/": "a/b", "../../etc/x": "etc/x", "/a/../b": "b"} {
		got, err := cleanName(in)
		if err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
