package apphelper

import (
	"os"

	"golang.org/x/sys/unix"
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
// mount point (prepareApp binds it onto itself). The app's PID namespace
// keeps the other apps' processes, and so their roots (/proc/PID/root),
// out of its view.
func pivotInto(rootfs string) error {
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
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "detach old root", Path: ".", Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}
