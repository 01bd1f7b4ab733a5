package apphelper

import (
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// The app's mounts are made out of the pod's systemd's sight. The pod's
// systemd (pid 1 of the pod's mount namespace) watches that namespace's
// mount table: each mount made there becomes a mount unit, with a
// reparse of /proc/self/mountinfo and the unit's dependencies looked up,
// and at the pod's end each is stopped and unloaded. An app's tree is
// some 25 to 30 mounts (its rootfs bound onto itself, /dev and its
// devices, /sys and the cgroup hierarchies, /tmp, the DNS files, the
// volumes), made while the helper works and the app starts, on the same
// cores. So each helper process that needs the app's tree (run, exec and
// the handlers) moves, every thread of it, into a mount namespace of its
// own before it mounts anything: a copy of the pod's whose mounts are
// slaves of theirs (what the pod mounts later still reaches the helper,
// nothing the helper mounts reaches the pod), and makes the tree there.
// The app's own namespace is a copy of that one, as it was of the pod's;
// enter joins the app's, found from a running process of the app. The
// tree goes when the helper's last process (and the app's namespace, a
// copy) ends: nothing of it is left in the pod's namespace for a
// mutable pod's next start of the app to detach.
//
// Shared mounts (the CRI's bidirectional volumes) must stay in the host
// source's peer group: the slave step would take their copies out of it,
// so each is cloned (open_tree, still a peer) before it and the clone,
// not the slave copy, is what mountApp mounts (cloneSharedSources).

// privateMounts moves every thread of the process into a new mount
// namespace, a copy of the current one whose mounts are all slaves of
// the current one's, and returns what beforeSlave returned: it runs on
// the thread that made the namespace, in it, before the slave step
// (cloneSharedSources).
//
// The namespace is made on one thread (unshare takes the calling
// thread's filesystem context with it), then every other thread of the
// Go runtime joins it (syscall.AllThreadsSyscall: setns); each thread
// first takes a filesystem context of its own, which setns(CLONE_NEWNS)
// requires. Threads started later are clones of these, in the namespace.
// A failure once the namespace is made leaves the threads split: the
// caller must then end the process (the helper does, as on any failure
// of its start).
func privateMounts(beforeSlave func() ([]*os.File, error)) (clones []*os.File, err error) {
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_UNSHARE, unix.CLONE_FS, 0, 0); e != 0 {
		return nil, &os.SyscallError{Syscall: "unshare(CLONE_FS) on every thread", Err: e}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return nil, &os.SyscallError{Syscall: "unshare(CLONE_NEWNS)", Err: err}
	}
	if clones, err = beforeSlave(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closeAll(clones)
			clones = nil
		}
	}()
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return clones, &os.PathError{Op: "make mounts slave", Path: "/", Err: err}
	}
	ns, err := os.Open("/proc/thread-self/ns/mnt")
	if err != nil {
		return clones, fmt.Errorf("open the helper's mount namespace: %w", err)
	}
	defer func() { _ = ns.Close() }()
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_SETNS, ns.Fd(), unix.CLONE_NEWNS, 0); e != 0 {
		return clones, &os.SyscallError{Syscall: "setns(CLONE_NEWNS) on every thread", Err: e}
	}
	return clones, nil
}

// touchMount looks dir up in the calling thread's mount namespace (an
// open follows an automount point, a stat may not), so that a mount made
// on lookup exists there.
func touchMount(dir string) error {
	f, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: the app's rootfs, a path of the pod's config
	if err != nil {
		return fmt.Errorf("open app rootfs: %w", err)
	}
	return f.Close()
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}
