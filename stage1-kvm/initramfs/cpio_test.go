package initramfs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestTreeUnpacks writes a tree with a nested directory, a symbolic link
// and files of two modes under a prefix, and has cpio(1) unpack it.
func TestTreeUnpacks(t *testing.T) {
	src := t.TempDir()
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"lib/systemd/systemd", 0o755}, {"lib/os-release", 0o644}} {
		p := filepath.Join(src, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.name), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../lib/systemd/systemd", filepath.Join(src, "lib", "init")); err != nil {
		t.Fatal(err)
	}
	entries, err := Tree(src, "usr")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s dir=%v link=%q %o %q", e.Name, e.Dir, e.Link, e.Mode, e.Data))
	}
	want := []string{
		`usr dir=true link="" 755 ""`,
		`usr/lib dir=true link="" 755 ""`,
		`usr/lib/init dir=false link="../lib/systemd/systemd" 0 ""`,
		`usr/lib/os-release dir=false link="" 644 "lib/os-release"`,
		`usr/lib/systemd dir=true link="" 755 ""`,
		`usr/lib/systemd/systemd dir=false link="" 755 "lib/systemd/systemd"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var buf bytes.Buffer
	if err := Write(&buf, entries); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("usr/lib/init\x00")) || !bytes.Contains(buf.Bytes(), []byte("../lib/systemd/systemd")) {
		t.Fatal("the archive lacks the link or its target")
	}
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("no cpio(1) to unpack the archive")
	}
	dir := t.TempDir()
	cmd := exec.Command(cpio, "-idm", "--quiet") //nolint:gosec // G204: cpio from PATH, a test tool
	cmd.Dir, cmd.Stdin = dir, &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, out)
	}
	out, _ := exec.Command("find", dir, "-printf", "%P %y %m %l\n").Output() //nolint:gosec // G204: the test's own temporary directory
	for _, want := range []string{"usr/lib/systemd/systemd f 755 \n", "usr/lib/os-release f 644 \n", "usr/lib/init l 777 ../lib/systemd/systemd\n", "usr/lib/systemd d 755 \n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("unpacked tree lacks %q: %s", want, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "usr/lib/init")); err != nil || string(b) != "lib/systemd/systemd" { //nolint:gosec // G304: the test's own temporary directory
		t.Errorf("the link reads %q, %v", b, err)
	}
}

func TestTreeRefusesSpecialFiles(t *testing.T) {
	src := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Tree(src, "usr"); err == nil {
		t.Fatal("Tree accepted a FIFO")
	}
}
