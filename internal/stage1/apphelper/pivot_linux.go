package apphelper

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/ownthread"
)

// pivotInto makes rootfs the root of the calling thread's mount namespace
// and detaches the old root, so that nothing above rootfs (the stage1
// rootfs, the pod's config, the other apps) is reachable from the thread
// or what it execs. A chroot(2) alone would not do: appc's default
// capabilities include CAP_SYS_CHROOT, and a chrooted process holding it
// walks out of its chroot (mkdir, chroot, cd .. to the top, chroot .).
// After pivot_root and the detach there is no "above" to walk to.
//
// The caller must be alone in a mount namespace of its own (the app's
// process, born with CLONE_NEWNS, see execApp), whose mounts are slaves
// of the pod's: the detach must not propagate back. rootfs must be a
// mount point (mountApp binds it onto itself). The app's PID namespace
// keeps the other apps' processes, and so their roots (/proc/PID/root),
// out of its view.
//
// With fds (the caller's mount namespace and the pod's /proc, open), the
// detach is made on another thread and pivotInto returns once the old
// root is out of the namespace, without waiting for what the kernel does
// after that (detachOldRoot).
func pivotInto(rootfs string, fds *detachFDs) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer func() { _ = unix.Close(oldRoot) }()
	if err := unix.Chdir(rootfs); err != nil {
		return &os.PathError{Op: "chdir", Path: rootfs, Err: err}
	}
	// pivot_root(".", "."): the old root is stacked on the new one, at
	// ".", and unmounted below, which needs no directory for it in the
	// app's rootfs (an app's rootfs is not ours to write).
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: rootfs, Err: err}
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return &os.PathError{Op: "fchdir", Path: "old root", Err: err}
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "make old root slave", Path: ".", Err: err}
	}
	if fds != nil {
		err = detachOldRoot(*fds, oldRoot)
	} else {
		err = detach()
	}
	if err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}

// detach detaches the mount of the working directory.
func detach() error {
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "detach old root", Path: ".", Err: err}
	}
	return nil
}

// detachOldRoot detaches the mount oldRoot is open on, the old root after
// a pivot_root and the calling thread's working directory, from the
// thread of fds.detacher, in the calling thread's mount namespace, and
// returns once the mount is out of the namespace.
//
// A detach takes the mounts out of the namespace at once, under the
// kernel's namespace lock, and then waits for an RCU grace period before
// it lets go of them (namespace_unlock): up to several milliseconds on a
// small virtual machine, tens on a busy one, most of an app's start (make
// bench, figure 2). The mounts are unreachable from the namespace once
// they are out of it; the wait only protects lockless path walks that
// were under way before, and no process of the app exists yet. So the
// other thread detaches and waits, while this one reads its namespace's
// mount table (through the pod's procfs, opened before: nothing is
// resolved in the new root while the old one is stacked on it, where a
// ".." at the root would lead) until the old root's mount is gone, which
// it sees as soon as the other thread lets go of the namespace lock. If
// the other thread fails, this one detaches itself.
func detachOldRoot(fds detachFDs, oldRoot int) error {
	var stx unix.Statx_t
	if err := unix.Statx(oldRoot, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
		return &os.PathError{Op: "statx", Path: "old root", Err: err}
	}
	id := []byte(strconv.FormatUint(stx.Mnt_id, 10) + " ")
	d := fds.detacher
	if !d.detach(oldRoot) {
		return detach()
	}
	// Once the other thread holds the namespace lock, the read waits for
	// it; until then the old root is still listed, and the thread, on
	// its way into the kernel, needs a CPU more than this one does.
	for {
		select {
		case <-d.failed:
			return detach()
		default:
		}
		in, err := mounted(fds.proc, id)
		if err != nil {
			return err
		}
		if !in {
			return nil
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// detacher is a thread of its own, started ahead (a thread's start can
// take milliseconds on a busy host), that joins a mount namespace and
// detaches the old root in it (detachOldRoot).
type detacher struct {
	ns      chan int      // the mount namespace to join, a descriptor it closes
	root    chan int      // the old root, a descriptor it closes
	started chan struct{} // closed just before it detaches
	failed  chan struct{} // closed when it gives up
}

// startDetacher starts a detacher; stop ends it if it was given nothing
// to detach.
func startDetacher() (d *detacher, stop func()) {
	d = &detacher{ns: make(chan int, 1), root: make(chan int, 1), started: make(chan struct{}), failed: make(chan struct{})}
	ownthread.Go(func() {
		// A thread shares its root and working directory with the
		// others of its process; setns into a mount namespace needs
		// them its own.
		if unix.Unshare(unix.CLONE_FS) != nil {
			close(d.failed)
			return
		}
		ns, ok := <-d.ns
		if !ok {
			return
		}
		err := unix.Setns(ns, unix.CLONE_NEWNS)
		_ = unix.Close(ns)
		if err != nil {
			close(d.failed)
			return
		}
		root, ok := <-d.root
		if !ok {
			return
		}
		err = unix.Fchdir(root)
		_ = unix.Close(root)
		if err != nil {
			close(d.failed)
			return
		}
		close(d.started)
		if unix.Unmount(".", unix.MNT_DETACH) != nil {
			close(d.failed)
		}
	})
	var once sync.Once
	return d, func() { once.Do(func() { close(d.ns); close(d.root) }) }
}

// give hands the detacher a copy of the descriptor fd on c, unless it
// has given up.
func (d *detacher) give(c chan int, fd int) bool {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return false
	}
	select {
	case c <- dup:
		return true
	case <-d.failed:
		_ = unix.Close(dup)
		return false
	}
}

// detach hands the detacher oldRoot and reports whether it is about to
// detach it.
func (d *detacher) detach(oldRoot int) bool {
	if !d.give(d.root, oldRoot) {
		return false
	}
	select {
	case <-d.started:
		return true
	case <-d.failed:
		return false
	}
}

// detachFDs are what detachOldRoot needs.
type detachFDs struct {
	mntns    int // the caller's mount namespace
	proc     int // the pod's /proc, a directory
	detacher *detacher
}

// openDetachFDs opens detachFDs for the calling thread, in the pod's
// mount namespace or a copy of it, before the pivot_root, and hands d the
// namespace to join.
func openDetachFDs(d *detacher) (*detachFDs, error) {
	const ns = "/proc/thread-self/ns/mnt"
	mntns, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: ns, Err: err}
	}
	proc, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Close(mntns)
		return nil, &os.PathError{Op: "open", Path: "/proc", Err: err}
	}
	// Should it fail, detachOldRoot detaches on the caller's thread.
	_ = d.give(d.ns, mntns)
	return &detachFDs{mntns: mntns, proc: proc, detacher: d}, nil
}

func (d *detachFDs) close() {
	_ = unix.Close(d.mntns)
	_ = unix.Close(d.proc)
}

// mounted reports whether the calling thread's mount namespace has a
// mount of the ID id (decimal, then a space: the first field of a line)
// in /proc/thread-self/mountinfo of the procfs proc, which is the pod's
// (the thread is in the pod's PID namespace). The kernel lists a mount
// stacked on the thread's root, as the old root is after pivot_root.
func mounted(proc int, id []byte) (bool, error) {
	const p = "/proc/thread-self/mountinfo"
	fd, err := unix.Openat(proc, "thread-self/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(f)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", p, err)
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if bytes.HasPrefix(line, id) {
			return true, nil
		}
	}
	return false, nil
}
