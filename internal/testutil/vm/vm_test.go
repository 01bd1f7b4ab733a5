package vm

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeELF writes a minimal x86-64 ELF executable, with a PT_INTERP
// program header (dynamically linked) or none (static).
func fakeELF(t *testing.T, path string, dynamic bool) {
	t.Helper()
	hdr := make([]byte, 64)
	copy(hdr, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(hdr[16:], 2)  // ET_EXEC
	le.PutUint16(hdr[18:], 62) // EM_X86_64
	le.PutUint32(hdr[20:], 1)
	le.PutUint16(hdr[52:], 64) // e_ehsize
	le.PutUint16(hdr[54:], 56) // e_phentsize
	if dynamic {
		le.PutUint64(hdr[32:], 64) // e_phoff
		le.PutUint16(hdr[56:], 1)  // e_phnum
		ph := make([]byte, 56)
		le.PutUint32(ph[0:], 3) // PT_INTERP
		hdr = append(hdr, ph...)
	}
	if err := os.WriteFile(path, hdr, 0o755); err != nil { //nolint:gosec // G306: a stand-in for busybox, executable as the real one is
		t.Fatal(err)
	}
}

// fixture makes a kernel directory, a static busybox and an init.
func fixture(t *testing.T) Config {
	t.Helper()
	d := t.TempDir()
	k := filepath.Join(d, "kernel")
	for p, data := range map[string]string{
		"kernel/vmlinuz":           "kernel",
		"kernel/modules.order":     "a.ko\nb.ko\n",
		"kernel/modules/a.ko":      "module a",
		"kernel/modules/b.ko":      "module b",
		"init.sh":                  "#!/bin/sh\n",
		"files/nscn":               "nscn",
		"files/images/busybox.aci": "aci",
	} {
		p = filepath.Join(d, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fakeELF(t, filepath.Join(d, "busybox"), false)
	return Config{
		Kernel: k, Busybox: filepath.Join(d, "busybox"), Init: filepath.Join(d, "init.sh"),
		Files: []File{
			{Src: filepath.Join(d, "files/nscn"), Dst: "/nscn/bin/nscn", Mode: 0o755},
			{Src: filepath.Join(d, "files/images/busybox.aci"), Dst: "/nscn/images/busybox.aci"},
		},
		CacheDir: filepath.Join(d, "cache"), Qemu: "/bin/true",
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, c *Config)
		want   string
	}{
		{name: "no kernel", change: func(_ *testing.T, c *Config) { c.Kernel = "" }, want: "no kernel directory"},
		{name: "kernel not fetched", change: func(t *testing.T, c *Config) { c.Kernel = t.TempDir() }, want: "fetch-kernel.sh"},
		{name: "dynamic busybox", change: func(t *testing.T, c *Config) { fakeELF(t, c.Busybox, true) }, want: "dynamically linked"},
		{name: "busybox not ELF", change: func(_ *testing.T, c *Config) { c.Busybox = c.Init }, want: "busybox"},
		{name: "bad accelerator", change: func(_ *testing.T, c *Config) { c.Accel = "hvf" }, want: "accelerator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fixture(t)
			tt.change(t, &c)
			if _, err := New(c); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestInitramfsCachedByContent(t *testing.T) {
	c := fixture(t)
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	first, err := m.Initramfs()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(first) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]cpioEntry{}
	for _, e := range readCPIO(t, b) {
		byName[e.name] = e
	}
	for name, want := range map[string]uint32{
		"init": 0o100755, "bin/busybox": 0o100755, "bin/sh": 0o120777, "dev/console": 0o020600,
		"lib/modules/a.ko": 0o100644, "lib/modules/b.ko": 0o100644, "lib/modules/modules.order": 0o100644,
		"nscn/bin/nscn": 0o100755, "nscn/images/busybox.aci": 0o100644, "proc": 0o040755,
	} {
		if e, ok := byName[name]; !ok || e.mode != want {
			t.Errorf("%s: %+v (present %v), want mode %o", name, e, ok, want)
		}
	}

	// Same content, new Machine: the cached archive, not rewritten.
	stamp := filepath.Join(c.CacheDir, "stamp")
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(first)
	m2, _ := New(c)
	again, err := m2.Initramfs()
	if err != nil || again != first {
		t.Fatalf("second build: %s, %v; want the cached %s", again, err, first)
	}
	if fi2, _ := os.Stat(again); !os.SameFile(fi, fi2) {
		t.Fatal("the cached archive was rewritten")
	}

	// Changed content: a new archive, and the old one is gone.
	if err := os.WriteFile(c.Files[0].Src, []byte("nscn v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	m3, _ := New(c)
	third, err := m3.Initramfs()
	if err != nil || third == first {
		t.Fatalf("after a change: %s, %v; want a new archive", third, err)
	}
	if _, err := os.Stat(first); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old archive %s still there (%v)", first, err)
	}
}

func TestWriteInitrdAppendsScripts(t *testing.T) {
	c := fixture(t)
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	base, err := m.Initramfs()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "initrd")
	names, err := writeInitrd(out, base, []Script{{Name: "b", Body: "echo b"}, {Name: "a.1", Body: "echo a"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "000-b,001-a.1" {
		t.Fatalf("names %v", names)
	}
	b, _ := os.ReadFile(out) //nolint:gosec // G304: a file the test made
	entries := readCPIO(t, b)
	last := entries[len(entries)-3:]
	if last[0].name != "test" || last[1].name != "test/000-b.sh" || last[1].data != "echo b" || last[2].name != "test/001-a.1.sh" {
		t.Fatalf("appended entries %+v", last)
	}

	for _, bad := range [][]Script{
		{{Name: "", Body: "x"}},
		{{Name: "a b", Body: "x"}},
		{{Name: "../x", Body: "x"}},
		{{Name: "a"}, {Name: "a"}},
	} {
		p := filepath.Join(t.TempDir(), "initrd")
		if _, err := writeInitrd(p, base, bad); err == nil {
			t.Errorf("scripts %+v accepted", bad)
		}
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("scripts %+v: half-written initrd left (%v)", bad, err)
		}
	}
}
