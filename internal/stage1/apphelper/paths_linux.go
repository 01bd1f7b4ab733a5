package apphelper

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/stage1/inroot"
)

// restrictPaths applies the policy's restricted /proc and /sys paths in
// the app's rootfs, after the plan mounted /proc and /sys there: a
// read-only path gets a read-only recursive clone of itself on top (or,
// when it is the root of a mount, that mount and those below it become
// read-only and private in place: readOnlyInPlace), a
// masked file /dev/null (read-only), a masked directory an empty read-only
// tmpfs. Every path is resolved in-root; one the rootfs lacks is skipped.
// Every mount is made through descriptors, none by a /proc/self/fd path:
// mountProc calls it on a thread whose /proc may be a procfs of a PID
// namespace it is not in.
func restrictPaths(ctx context.Context, log *slog.Logger, root *os.File, p isolate.Paths) error {
	for _, path := range p.ReadOnly {
		t, ok, err := openRestricted(root, path)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		log.DebugContext(ctx, "make path read-only", "path", path)
		err = readOnlyInPlace(t, path)
		if errors.Is(err, errNotMountRoot) {
			err = cloneOnto(t, int(t.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, path)
		}
		_ = t.Close()
		if err != nil {
			return err
		}
	}
	for _, path := range p.Masked {
		t, ok, err := openRestricted(root, path)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		st, err := t.Stat()
		if err != nil {
			_ = t.Close()
			return fmt.Errorf("mask %s: %w", path, err)
		}
		log.DebugContext(ctx, "mask path", "path", path, "dir", st.IsDir())
		if st.IsDir() {
			err = emptyOnto(t, path)
		} else {
			err = nullOnto(t, path)
		}
		_ = t.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// openRestricted opens path in the rootfs without following its last
// component; ok is false when it does not exist.
func openRestricted(root *os.File, path string) (*os.File, bool, error) {
	f, err := inroot.Open(root, path, unix.O_PATH|unix.O_NOFOLLOW)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("restrict %s: %w", path, err)
	}
	return f, true, nil
}

// cloneOnto mounts a read-only clone of the mount tree at (dirfd, from)
// onto target, with the new mount API, so no path is resolved twice.
func cloneOnto(target *os.File, dirfd int, from string, flags int, name string) error {
	tree, err := unix.OpenTree(dirfd, from, uint(flags)|unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return &os.PathError{Op: "open_tree", Path: name, Err: err}
	}
	defer func() { _ = unix.Close(tree) }()
	attrFlags := uint(unix.AT_EMPTY_PATH)
	if flags&unix.AT_RECURSIVE != 0 {
		attrFlags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(tree, "", attrFlags, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return &os.PathError{Op: "mount_setattr", Path: name, Err: err}
	}
	if err := unix.MoveMount(tree, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount", Path: name, Err: err}
	}
	return nil
}

// emptyOnto mounts an empty read-only tmpfs on the directory target.
func emptyOnto(target *os.File, name string) error {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return &os.SyscallError{Syscall: "fsopen(tmpfs)", Err: err}
	}
	defer func() { _ = unix.Close(fsfd) }()
	for _, kv := range [][2]string{{"source", "tmpfs"}, {"size", "0"}, {"mode", "0555"}} {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return &os.SyscallError{Syscall: "fsconfig(tmpfs, " + kv[0] + ")", Err: err}
		}
	}
	// Read-only in itself too, as mount(2) with MS_RDONLY makes it.
	if err := unix.FsconfigSetFlag(fsfd, "ro"); err != nil {
		return &os.SyscallError{Syscall: "fsconfig(tmpfs, ro)", Err: err}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return &os.SyscallError{Syscall: "fsconfig(tmpfs, create)", Err: err}
	}
	mnt, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return &os.SyscallError{Syscall: "fsmount(tmpfs)", Err: err}
	}
	defer func() { _ = unix.Close(mnt) }()
	if err := unix.MoveMount(mnt, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount tmpfs", Path: name, Err: err}
	}
	return nil
}

// nullOnto mounts a read-only bind of the null device on the file
// target: of the caller's /dev/null, the pod's in the pod's root or the
// app's (a bind of the pod's that mountApp made) in the app's, which
// must be the null device (character device 1:3), not a symlink.
func nullOnto(target *os.File, name string) error {
	const p = "/dev/null"
	null, err := os.OpenFile(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mask %s: %w", name, err)
	}
	defer func() { _ = null.Close() }()
	var st unix.Stat_t
	if err := unix.Fstat(int(null.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		return fmt.Errorf("mask %s: %s is not the null device", name, p)
	}
	return cloneOnto(target, int(null.Fd()), "", unix.AT_EMPTY_PATH, name)
}

// errNotMountRoot is readOnlyInPlace's answer for a path that is not the
// root of a mount.
var errNotMountRoot = errors.New("not the root of a mount")

// readOnlyInPlace makes the mount target is the root of, and every mount
// below it, read-only and private (mount_setattr(2), AT_RECURSIVE), or
// returns errNotMountRoot. The app sees what a read-only recursive clone
// stacked on top would show it (the clone is private too: a mount the
// pod makes later under the path does not reach it), without a second
// copy of the tree: the plan's /sys, a recursive bind of the pod's with a
// dozen cgroup hierarchies below it, is the policy's read-only /sys, and
// every mount here is copied into each app process's mount namespace and
// detached again at its pivot_root (enterApp). The mounts are the app's
// own, binds mountApp made in its rootfs in the helper's namespace: the
// pod's are not touched.
func readOnlyInPlace(target *os.File, name string) error {
	var stx unix.Statx_t
	if err := unix.Statx(int(target.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &stx); err != nil {
		return &os.PathError{Op: "statx", Path: name, Err: err}
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 || stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return errNotMountRoot
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY, Propagation: unix.MS_PRIVATE}
	err := unix.MountSetattr(int(target.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr)
	if errors.Is(err, unix.EBUSY) {
		// A file open for writing on one of them: the kernel changed
		// nothing, and a clone on top does not need them read-only.
		return errNotMountRoot
	}
	if err != nil {
		return &os.PathError{Op: "mount_setattr (rdonly, private)", Path: name, Err: err}
	}
	return nil
}
