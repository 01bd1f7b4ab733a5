package idshift

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/idrange"
)

// UserNS returns a descriptor of a new user namespace that maps 0…Count-1
// onto r (IDs and groups alike), for MOUNT_ATTR_IDMAP. A namespace needs
// a process to be created: a child of exe is started in it, stopped by
// ptrace before it runs (PTRACE_TRACEME, then execve stops it), its
// namespace opened and the child killed. exe is any executable the
// child can exec (the caller's own, /proc/self/exe).
func UserNS(r idrange.Range, exe string) (_ *os.File, err error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	// The tracer is this thread; it stays the same until the child is
	// reaped.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(r.Base), Size: int(r.Count)}}
	cmd := &exec.Cmd{
		Path: exe,
		Args: []string{exe},
		Env:  []string{},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: m, GidMappings: m,
			Ptrace:    true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("create user namespace %s: %w", r, err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	p := fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid)
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: our child's namespace
	if err != nil {
		return nil, fmt.Errorf("create user namespace %s: %w", r, err)
	}
	return f, nil
}

// cloneIDMapped returns a detached clone of the mount at path (not its
// submounts) shifted by the user namespace userns.
func cloneIDMapped(path string, userns *os.File) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, &os.PathError{Op: "open_tree", Path: path, Err: err}
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		_ = unix.Close(fd)
		return -1, &os.PathError{Op: "mount_setattr idmap", Path: path, Err: err}
	}
	runtime.KeepAlive(userns)
	return fd, nil
}

// IDMapSupported reports whether the mount at path can be idmapped: it
// makes a detached idmapped clone and drops it, changing nothing. A
// kernel or filesystem without the feature answers with an error
// (EINVAL, ENOSYS, EPERM): false and that error, for the log.
func IDMapSupported(path string, userns *os.File) (bool, error) {
	fd, err := cloneIDMapped(path, userns)
	if err != nil {
		return false, err
	}
	_ = unix.Close(fd)
	return true, nil
}

// IDMapMounts stacks an idmapped clone on each of paths, in the calling
// thread's mount namespace, which must be a private one (the caller's,
// unshared, made a slave of the host's) since the clones hide what they
// cover. paths are mount points, parents before their submounts: every
// clone is taken before any is attached, because the clone of a parent
// does not carry its submounts and would hide them.
func IDMapMounts(paths []string, userns *os.File) error {
	fds := make([]int, 0, len(paths))
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	for _, p := range paths {
		fd, err := cloneIDMapped(p, userns)
		if err != nil {
			return err
		}
		fds = append(fds, fd)
	}
	for i, p := range paths {
		if err := unix.MoveMount(fds[i], "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return &os.PathError{Op: "move_mount", Path: p, Err: err}
		}
	}
	return nil
}

// ChownTree shifts the owner and group of every file below root (root
// included) by r: an ID below r.Count becomes r.Base+ID; an ID at or
// above it (already shifted, or one no namespace of 65536 maps) is left
// alone, so that a second pass changes nothing. It crosses into mounts
// below root (an app's root filesystem in the stage1's), which must be
// the pod's own, but not into the directories of skip (idmapped
// instead). Symbolic links are changed, not followed. chown(2) clears
// the set-user-ID and set-group-ID bits: they are set again. File
// capabilities (security.capability) are lost, as chown drops them.
func ChownTree(root string, r idrange.Range, skip []string) error {
	if err := r.Check(); err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && slices.Contains(skip, p) {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		uid, uok := r.Shift(st.Uid)
		gid, gok := r.Shift(st.Gid)
		if !uok && !gok {
			return nil
		}
		nu, ng := -1, -1
		if uok {
			nu = int(uid)
		}
		if gok {
			ng = int(gid)
		}
		if err := unix.Lchown(p, nu, ng); err != nil {
			return &os.PathError{Op: "lchown", Path: p, Err: err}
		}
		if d.Type()&fs.ModeSymlink == 0 && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			if err := unix.Chmod(p, st.Mode&0o7777); err != nil {
				return &os.PathError{Op: "chmod", Path: p, Err: err}
			}
		}
		return nil
	})
}
