package apphelper

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/ownthread"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// joinAppCgroup moves the calling process into the app's cgroups, bound
// into the pod (sdpod.App.Cgroups), before it execs the app.
func joinAppCgroup(app *sdpod.App) error {
	for h, dir := range app.Cgroups {
		if err := WriteCgroupProcs(dir, "0"); err != nil {
			return fmt.Errorf("join app cgroup %s: %w", h, err)
		}
	}
	return nil
}

// WriteCgroupProcs writes one value to dir/cgroup.procs ("0": the
// writer).
func WriteCgroupProcs(dir, v string) error {
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.procs"), os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0) //nolint:gosec // G304: a file in the pod directory or a cgroup control file
	if err != nil {
		return err
	}
	if _, err := f.WriteString(v); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f.Close()
}

// mountAppCgroupV2 mounts, read-only on the app's /sys/fs/cgroup, the
// unified hierarchy as a cgroup namespace rooted at the calling process's
// cgroup shows it: mountApp runs in the app's unit, so that is the
// unit's cgroup, where the pod's systemd set the app's limits (memory.max,
// cpu.max, cpu.weight), and the app sees no other app's cgroup.
func mountAppCgroupV2(ctx context.Context, log *slog.Logger, root *os.File, _ *sdpod.App) error {
	t, ok, err := openRestricted(root, "/sys/fs/cgroup")
	if err != nil {
		return err
	}
	if !ok {
		log.DebugContext(ctx, "no /sys/fs/cgroup in the app's /sys")
		return nil
	}
	defer func() { _ = t.Close() }()
	log.DebugContext(ctx, "mount app cgroup (v2)")
	// The cgroup namespace is the thread's: a goroutine of its own, on a
	// thread that is never unlocked and so ends with it, keeps it off
	// the rest of the helper.
	var merr error
	ownthread.Run(func() { merr = mountCgroup2NS(t) })
	return merr
}

// mountCgroup2NS mounts cgroup2 onto target, read-only, from a new cgroup
// namespace of the calling (locked) thread.
func mountCgroup2NS(target *os.File) error {
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return &os.SyscallError{Syscall: "unshare(CLONE_NEWCGROUP)", Err: err}
	}
	fsfd, err := unix.Fsopen("cgroup2", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return &os.SyscallError{Syscall: "fsopen(cgroup2)", Err: err}
	}
	defer func() { _ = unix.Close(fsfd) }()
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return &os.SyscallError{Syscall: "fsconfig(cgroup2, create)", Err: err}
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return &os.SyscallError{Syscall: "fsmount(cgroup2)", Err: err}
	}
	defer func() { _ = unix.Close(mfd) }()
	if err := unix.MoveMount(mfd, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount", Path: "/sys/fs/cgroup", Err: err}
	}
	return nil
}

// mountAppCgroup puts, in the app's view, its own cgroup (read-only) over
// each hierarchy that has one, so that the app reads its limits at the
// top of the hierarchy (/sys/fs/cgroup/memory/memory.limit_in_bytes) as
// well as at the path /proc/self/cgroup names, and sees no other app's.
func mountAppCgroup(ctx context.Context, log *slog.Logger, root *os.File, app *sdpod.App) error {
	for h, dir := range app.Cgroups {
		t, ok, err := openRestricted(root, "/sys/fs/cgroup/"+h)
		if err != nil {
			return err
		}
		if !ok {
			log.DebugContext(ctx, "no cgroup hierarchy in the app's /sys", "hierarchy", h)
			continue
		}
		log.DebugContext(ctx, "mount app cgroup", "hierarchy", h, "source", dir)
		err = cloneOnto(t, unix.AT_FDCWD, dir, 0, "/sys/fs/cgroup/"+h)
		_ = t.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
