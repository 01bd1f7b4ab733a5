package entrypoint

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestGuestRootStaysInside: the app entrypoints change the stage1 rootfs
// while the guest runs and can plant symlinks in it; a symlink that leads
// out of it makes a write, a FIFO or a removal fail instead of reaching the
// host.
func TestGuestRootStaysInside(t *testing.T) {
	podDir := t.TempDir()
	root := filepath.Join(podDir, stage1abi.Stage1RootfsRel)
	outside := t.TempDir()
	keep := filepath.Join(outside, "app", "keep")
	if err := os.MkdirAll(filepath.Dir(keep), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep, []byte("host file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"nscn/host", "etc/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"nscn/io":            outside,
		"nscn/host/app":      filepath.Join(outside, "app"),
		"etc/systemd/system": outside,
		"nscn/pod.json":      keep,
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	g, err := openGuestRoot(podDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	tests := []struct {
		name string
		do   func() error
	}{
		{name: "fifo", do: func() error { return g.mkfifos("/nscn/io/web/stdout") }},
		{name: "unit", do: func() error { return g.writeNew("/etc/systemd/system/app-web.service", []byte("[Unit]\n"), 0o644) }},
		{name: "replace", do: func() error { return g.replace("/etc/systemd/system/x", []byte("x"), 0o644) }},
		{name: "remove", do: func() error { return g.remove("/nscn/host/app/keep") }},
		{name: "load", do: func() error { _, err := g.loadPod(); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); err == nil {
				t.Fatal("went through a symlink out of the stage1 rootfs")
			}
		})
	}
	ents, err := os.ReadDir(outside)
	if err != nil || len(ents) != 1 || ents[0].Name() != "app" {
		t.Fatalf("the host directory changed: %v %v", ents, err)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "host file\n" { //nolint:gosec // G304: the test's file
		t.Fatalf("the host file: %q %v", b, err)
	}
	// Inside, the same calls work.
	if err := g.mkfifos("/nscn/io2/web/stdout"); err != nil {
		t.Fatal(err)
	}
	if err := g.replace("/nscn/state/x", []byte("1"), 0o600); err == nil {
		t.Fatal("replace made a missing parent")
	}
	if err := g.remove("/nscn/io2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "nscn/io2")); err == nil {
		t.Fatal("remove left the directory")
	}
}

func TestRel(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "pod path", in: "/etc/systemd/system/a.service", want: "etc/systemd/system/a.service"},
		{name: "pod-directory path", in: stage1abi.AppStatusFile("web"), want: "rkt/status/web"},
		{name: "dot-dot", in: "/../../etc", want: "etc"},
		{name: "root", in: "/", want: "."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rel(tt.in); got != tt.want {
				t.Fatalf("rel(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
