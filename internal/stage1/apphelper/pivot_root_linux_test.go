package apphelper

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/testutil"
)

// TestPivotInto pivots a thread into a tmpfs root, in a mount namespace
// of its own, with the detach made on the calling thread and on a
// detacher, and checks that nothing of the old root is left in the
// namespace: its mount table (read through the host's /proc, opened
// before) lists the new root alone, and "/.." is "/".
func TestPivotInto(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tt := range []struct {
		name     string
		detacher bool
	}{
		{name: "detach on the calling thread", detacher: false},
		{name: "detach on a detacher thread", detacher: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var (
				err       error
				mountinfo string
				dotdot    bool
			)
			done := make(chan struct{})
			go func() {
				defer close(done)
				runtime.LockOSThread() // never unlocked: the thread's root and namespace die with it
				if err = unix.Unshare(unix.CLONE_NEWNS); err != nil {
					return
				}
				if err = unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
					return
				}
				root := filepath.Join(dir, "root")
				if err = os.Mkdir(root, 0o755); err != nil {
					return
				}
				if err = unix.Mount("tmpfs", root, "tmpfs", 0, ""); err != nil {
					return
				}
				var fds *detachFDs
				proc, perr := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if perr != nil {
					err = perr
					return
				}
				defer func() { _ = unix.Close(proc) }()
				if tt.detacher {
					d, stop := startDetacher()
					defer stop()
					if fds, err = openDetachFDs(d); err != nil {
						return
					}
					defer fds.close()
				}
				if err = pivotInto(root, fds); err != nil {
					return
				}
				fd, oerr := unix.Openat(proc, "thread-self/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if oerr != nil {
					err = oerr
					return
				}
				f := os.NewFile(uintptr(fd), "mountinfo")
				b := make([]byte, 1<<16)
				n, _ := f.Read(b)
				_ = f.Close()
				mountinfo = strings.TrimSpace(string(b[:n]))
				var a, p unix.Stat_t
				dotdot = unix.Stat("/", &a) == nil && unix.Stat("/..", &p) == nil && a.Ino == p.Ino && a.Dev == p.Dev
			}()
			<-done
			if err != nil {
				t.Fatal(err)
			}
			if lines := strings.Split(mountinfo, "\n"); len(lines) != 1 || !strings.Contains(lines[0], " / / ") {
				t.Errorf("the namespace's mounts after the pivot, want the new root alone:\n%s", mountinfo)
			}
			if !dotdot {
				t.Error(`"/.." is not "/" after the pivot`)
			}
		})
	}
}
