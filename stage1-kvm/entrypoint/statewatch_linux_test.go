package entrypoint

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStateWatchSeesTheGuestsFiles: the two ways the guest makes its
// state files, a rename (the app helper's atomic write of pod-ended) and
// a mknod (systemd's readiness FIFO), each wake the watch.
func TestStateWatchSeesTheGuestsFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := watchState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	select {
	case <-w.C:
		t.Fatal("woken before any change")
	case <-time.After(50 * time.Millisecond):
	}
	for _, tc := range []struct {
		name string
		make func(string) error
	}{
		{"rename", func(p string) error {
			if err := os.WriteFile(p+".tmp", []byte("\n"), 0o644); err != nil {
				return err
			}
			// The write's IN_CREATE wakes the watch too: drain it.
			<-w.C
			return os.Rename(p+".tmp", p)
		}},
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o600) }},
	} {
		if err := tc.make(filepath.Join(dir, tc.name)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.C:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no wake-up", tc.name)
		}
	}
}

// TestStateWatchRefusesASymlink: the guest's root could have replaced
// the state directory with a symlink to somewhere on the host.
func TestStateWatchRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "state")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if w, err := watchState(link); err == nil {
		_ = w.Close()
		t.Fatal("a symlink was watched")
	}
	if w, err := watchState(filepath.Join(dir, "missing")); err == nil {
		_ = w.Close()
		t.Fatal("a missing directory was watched")
	}
}
