package initramfs

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestWriteUnpacks has cpio(1), when the host has it, unpack what Write
// wrote; without it, the test checks the archive's framing only.
func TestWriteUnpacks(t *testing.T) {
	var buf bytes.Buffer
	err := Write(&buf, []Entry{
		{Name: "init", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Name: "lib/modules/a.ko", Mode: 0o644, Data: []byte("abc")},
		{Name: "dev", Mode: 0o755, Dir: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if len(b)%4 != 0 || !bytes.HasPrefix(b, []byte("070701")) || !bytes.Contains(b, []byte("TRAILER!!!\x00")) {
		t.Fatalf("not a newc archive: %q", b)
	}
	// lib and lib/modules come before lib/modules/a.ko.
	if i, j := bytes.Index(b, []byte("lib/modules\x00")), bytes.Index(b, []byte("lib/modules/a.ko\x00")); i < 0 || i > j {
		t.Fatalf("parent directory missing or after its file")
	}
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("no cpio(1) to unpack the archive")
	}
	dir := t.TempDir()
	cmd := exec.Command(cpio, "-idm", "--quiet") //nolint:gosec // G204: cpio from PATH, a test tool
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, out)
	}
	out, _ := exec.Command("find", dir, "-printf", "%P %m\n").Output() //nolint:gosec // G204: the test's own temporary directory
	for _, want := range []string{"init 755", "lib/modules/a.ko 644", "dev 755"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("unpacked tree lacks %q: %s", want, out)
		}
	}
}

func TestWriteRefusesEscapes(t *testing.T) {
	for _, name := range []string{"../x", "/", "."} {
		if err := Write(&bytes.Buffer{}, []Entry{{Name: name, Data: []byte("x")}}); err == nil {
			t.Errorf("Write accepted %q", name)
		}
	}
}
