package podroot

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestRootStaysInside: the app entrypoints change the stage1 rootfs
// while the pod runs, and the pod can plant symlinks in it; a symlink that leads
// out of it makes a write, a FIFO or a removal fail instead of reaching the
// host.
func TestRootStaysInside(t *testing.T) {
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
	g, err := Open(podDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	tests := []struct {
		name string
		do   func() error
	}{
		{name: "fifo", do: func() error { return g.Mkfifos("/nscn/io/web/stdout") }},
		{name: "unit", do: func() error { return g.WriteNew("/etc/systemd/system/app-web.service", []byte("[Unit]\n"), 0o644) }},
		{name: "replace", do: func() error { return g.Replace("/etc/systemd/system/x", []byte("x"), 0o644) }},
		{name: "remove", do: func() error { return g.Remove("/nscn/host/app/keep") }},
		{name: "load", do: func() error { _, err := g.LoadPod(); return err }},
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
	if err := g.Mkfifos("/nscn/io2/web/stdout"); err != nil {
		t.Fatal(err)
	}
	if err := g.Replace("/nscn/state/x", []byte("1"), 0o600); err == nil {
		t.Fatal("replace made a missing parent")
	}
	if err := g.Remove("/nscn/io2"); err != nil {
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
			if got := Rel(tt.in); got != tt.want {
				t.Fatalf("Rel(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestReadFileRegularOnly: a FIFO planted where a record is expected is
// refused at once, not read (which would wait for a writer forever), and
// so is a file over the size given.
func TestReadFileRegularOnly(t *testing.T) {
	podDir := t.TempDir()
	root := filepath.Join(podDir, stage1abi.Stage1RootfsRel)
	if err := os.MkdirAll(filepath.Join(root, "nscn"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "nscn", "pod.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "nscn", "big"), make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "nscn", "small"), []byte("7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := Open(podDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	done := make(chan error, 1)
	go func() { _, err := g.LoadPod(); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a FIFO read as the pod config")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LoadPod blocked on a FIFO")
	}
	if _, err := g.ReadFile("/nscn/big", 64); err == nil {
		t.Error("a file over the limit was read")
	}
	if b, err := g.ReadFile("/nscn/small", 64); err != nil || string(b) != "7\n" {
		t.Errorf("ReadFile of a small regular file: %q, %v", b, err)
	}
}

// TestStartedApps: the started apps with no status, by name; a temporary
// file, a directory, a name that is no app's, and a started directory
// that is a symlink out of the root are left out.
func TestStartedApps(t *testing.T) {
	podDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(podDir, stage1abi.Stage1RootfsRel), 0o755); err != nil {
		t.Fatal(err)
	}
	g, err := Open(podDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	if got := g.StartedApps(); got != nil {
		t.Errorf("no started directory: %v, want none", got)
	}
	write := func(rel string) {
		t.Helper()
		p := filepath.Join(podDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("0\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(stage1abi.AppStartedFile("running"))
	write(stage1abi.AppStartedFile("done"))
	write(stage1abi.AppStatusFile("done"))
	write(stage1abi.AppStartedFile(".running.tmp"))
	write(stage1abi.AppStartedFile("Not_An_App"))
	if err := os.Mkdir(filepath.Join(podDir, stage1abi.AppStartedFile("a-dir")), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := g.StartedApps(); !slices.Equal(got, []string{"running"}) {
		t.Errorf("StartedApps = %v, want [running]", got)
	}
	// The started directory replaced by a symlink to a host directory
	// full of names: none is listed.
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "passwd"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	started := filepath.Join(podDir, filepath.Dir(stage1abi.AppStartedFile("x")))
	if err := os.RemoveAll(started); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, started); err != nil {
		t.Fatal(err)
	}
	if got := g.StartedApps(); got != nil {
		t.Errorf("StartedApps through a symlink out of the root = %v, want none", got)
	}
}

// TestStatusInputAndRecordKilled: run's reading of the pod's end and its
// record of a kill, in the root: a status directory that is a symlink out
// of it gets nothing written through it.
func TestStatusInputAndRecordKilled(t *testing.T) {
	podDir := t.TempDir()
	root := filepath.Join(podDir, stage1abi.Stage1RootfsRel)
	for p, c := range map[string]string{
		"nscn/state/first-failure": "3\n",
		"nscn/state/killed":        "\n",
		"rkt/status/a":             "3\n",
		"rkt/status/junk":          "not a number\n",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	g, err := Open(podDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	in := g.StatusInput([]string{"a", "b", "junk"})
	if in.FirstFailure != "3\n" || !in.Killed || len(in.Statuses) != 1 || in.Statuses["a"] != 3 {
		t.Fatalf("StatusInput = %+v, want first failure 3, killed, a's status 3 only", in)
	}
	if err := g.RecordKilled([]string{"a", "b"}, in.Statuses, 137); err != nil {
		t.Fatal(err)
	}
	for app, want := range map[string]string{"a": "3\n", "b": "137\n"} {
		if b, err := os.ReadFile(filepath.Join(root, "rkt/status", app)); err != nil || string(b) != want { //nolint:gosec // G304: the test's file
			t.Errorf("status of %s: %q %v, want %q", app, b, err, want)
		}
	}
	host := t.TempDir()
	if err := os.RemoveAll(filepath.Join(root, "rkt/status")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(root, "rkt/status")); err != nil {
		t.Fatal(err)
	}
	if err := g.RecordKilled([]string{"c"}, nil, 137); err == nil {
		t.Error("a kill recorded through a symlink out of the root")
	}
	if ents, _ := os.ReadDir(host); len(ents) != 0 {
		t.Errorf("the host directory behind the symlink got %v", ents)
	}
	if err := MarkKilled(podDir); err != nil {
		t.Fatal(err)
	}
}
