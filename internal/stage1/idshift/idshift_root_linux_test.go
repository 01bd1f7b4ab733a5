package idshift

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/idrange"
	"github.com/nosecone/nscn/internal/testutil"
)

var testRange = idrange.Range{Base: 1 << 20, Count: idrange.Size}

func owner(t *testing.T, p string) (uint32, uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid, st.Mode & 0o7777
}

// TestChownTree shifts a tree as a pod's rootfs: IDs below the range's
// size move, higher ones stay, set-ID bits survive, symlinks are changed
// themselves, skipped directories are left alone, and a second pass
// changes nothing.
func TestChownTree(t *testing.T) {
	testutil.RequiresRoot(t)
	root := t.TempDir()
	mk := func(rel string, uid, gid int, mode os.FileMode) string {
		p := filepath.Join(root, rel)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.MkdirAll(filepath.Join(root, "skip"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := mk("plain", 0, 0, 0o644)
	user := mk("user", 1000, 100, 0o640)
	setuid := mk("setuid", 0, 0, 0o4755|os.ModeSetuid)
	if err := unix.Chmod(setuid, 0o6755); err != nil {
		t.Fatal(err)
	}
	high := mk("high", 70000, 70000, 0o644)
	skipped := mk("skip/file", 0, 0, 0o644)
	link := filepath.Join(root, "link")
	if err := os.Symlink("/nonexistent", link); err != nil {
		t.Fatal(err)
	}
	_, _, rootMode := owner(t, root)
	for pass := range 2 {
		if err := ChownTree(root, testRange, []string{filepath.Join(root, "skip")}); err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		b := testRange.Base
		for _, c := range []struct {
			p              string
			uid, gid, mode uint32
		}{
			{plain, b, b, 0o644},
			{user, b + 1000, b + 100, 0o640},
			{setuid, b, b, 0o6755},
			{high, 70000, 70000, 0o644},
			{skipped, 0, 0, 0o644},
			{root, b, b, rootMode},
		} {
			if u, g, m := owner(t, c.p); u != c.uid || g != c.gid || m != c.mode {
				t.Errorf("pass %d: %s is %d:%d %o, want %d:%d %o", pass, c.p, u, g, m, c.uid, c.gid, c.mode)
			}
		}
		if u, g, _ := owner(t, link); u != b || g != b {
			t.Errorf("pass %d: the symlink is %d:%d, want it changed itself", pass, u, g)
		}
	}
}

// TestIDMap probes and makes an idmapped mount of a directory on the
// test's temporary filesystem: the files show shifted through it and
// unchanged beside it. Where the filesystem cannot be idmapped, the probe
// must say so and the mount must fail the same way.
func TestIDMap(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ns, err := UserNS(testRange, "/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ns.Close() }()
	ok, why := IDMapSupported(dir, ns)
	if !ok {
		if err := IDMapMounts([]string{dir}, ns); err == nil {
			t.Fatalf("the probe refused (%v) but the mount was made", why)
		}
		t.Skipf("the test's filesystem cannot be idmapped: %v", why)
	}
	// In a mount namespace of its own thread, so that nothing leaks.
	done := make(chan error, 1)
	go func() {
		// The thread is left locked: it ends with the goroutine.
		lockThread()
		if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
			done <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			done <- err
			return
		}
		if err := IDMapMounts([]string{dir}, ns); err != nil {
			done <- err
			return
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, "f"), &st); err != nil {
			done <- err
			return
		}
		if st.Uid != testRange.Base {
			t.Errorf("through the idmapped mount the file is uid %d, want %d", st.Uid, testRange.Base)
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if u, _, _ := owner(t, filepath.Join(dir, "f")); u != 0 {
		t.Errorf("outside the mount namespace the file is uid %d, want 0", u)
	}
}

func TestUserNSRefusesHostRoot(t *testing.T) {
	if _, err := UserNS(idrange.Range{Base: 0, Count: 65536}, "/proc/self/exe"); err == nil {
		t.Fatal("a user namespace mapping host root was made")
	}
}

func lockThread() { runtime.LockOSThread() }
