// Package podattach binds host paths into the mount namespace of a running
// pod and takes them out again: what the app/add and app/rm entrypoints
// of a mutable pod do with an added app's rootfs and the host paths of its
// mounts. The namespace is the one of a process of the pod (the nspawn
// flavor's pod init; the kvm flavor's virtiofsd, whose namespace is what
// the guest sees), whose root is the pod's stage1 rootfs.
//
// It runs in stage1, on the host, as root (open_tree(2), move_mount(2),
// setns(2)). Paths in the pod are resolved by the kernel in the pod's
// mount namespace, or in-root (package inroot) from the host, never
// followed on the host.
package podattach

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/inroot"
)

// NS is the mount namespace of a running pod: that of process PID, whose
// root is the host directory Root (the pod's stage1 rootfs).
type NS struct {
	PID  int
	Root string
}

// Attachment is a host path to bind into the running pod.
type Attachment struct {
	Source    string // host path
	Target    string // pod path
	Recursive bool
	ReadOnly  bool
	// ReadOnlyTop keeps ReadOnly to the clone's top mount.
	ReadOnlyTop bool
}

// Attach binds host paths into the pod's mount namespace: each source is
// cloned on the host (open_tree(2), OPEN_TREE_CLONE), made read-only if
// asked (mount_setattr(2)), and moved onto its target in the pod
// (move_mount(2)) by a thread that joined the pod's mount namespace. The
// targets are created first, from the host, in-root in ns.Root: a
// directory, or an empty file for a file source.
func Attach(ctx context.Context, log *slog.Logger, ns NS, as []Attachment) error {
	var fds []int
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	for _, a := range as {
		st, err := os.Stat(a.Source)
		if err != nil {
			return fmt.Errorf("bind %s into the pod: %w", a.Source, err)
		}
		if err := makeTarget(ns.Root, a.Target, st.IsDir()); err != nil {
			return err
		}
		flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
		if a.Recursive {
			flags |= unix.AT_RECURSIVE
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, a.Source, uint(flags))
		if err != nil {
			return &os.PathError{Op: "open_tree", Path: a.Source, Err: err}
		}
		fds = append(fds, fd)
		if a.ReadOnly {
			at := unix.AT_EMPTY_PATH | unix.AT_RECURSIVE
			if a.ReadOnlyTop {
				at = unix.AT_EMPTY_PATH
			}
			if err := unix.MountSetattr(fd, "", uint(at), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
				return &os.PathError{Op: "mount_setattr (rdonly)", Path: a.Source, Err: err}
			}
		}
		log.DebugContext(ctx, "bind into the pod", "source", a.Source, "target", a.Target, "readOnly", a.ReadOnly)
	}
	return InMountNS(ns.PID, func() error {
		for i, a := range as {
			if err := unix.MoveMount(fds[i], "", unix.AT_FDCWD, a.Target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return &os.PathError{Op: "move_mount", Path: a.Target, Err: err}
			}
		}
		return nil
	})
}

// makeTarget creates a mount point in root, resolved in it (the pod can
// write its root): a directory, or an empty file.
func makeTarget(rootDir, target string, dir bool) error {
	root, err := inroot.OpenRoot(rootDir)
	if err != nil {
		return fmt.Errorf("open the stage1 rootfs: %w", err)
	}
	defer func() { _ = root.Close() }()
	var f *os.File
	if dir {
		f, err = inroot.MkdirAll(root, target, 0o755)
	} else {
		f, err = inroot.CreateFile(root, target, 0o644)
	}
	if err != nil {
		return fmt.Errorf("create mount point %s in the pod: %w", target, err)
	}
	return f.Close()
}

// InMountNS runs f on a thread of its own that joined the mount namespace
// of pid, its root and working directory the namespace's /. The thread is
// never returned to the Go scheduler: it ends with the goroutine
// (runtime.LockOSThread without UnlockOSThread).
func InMountNS(pid int, f func() error) error {
	ns, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "ns", "mnt"))
	if err != nil {
		return fmt.Errorf("open the pod's mount namespace: %w", err)
	}
	defer func() { _ = ns.Close() }()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the namespace
		// setns(CLONE_NEWNS) refuses a thread that shares its
		// filesystem context, as Go's threads do.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- &os.SyscallError{Syscall: "unshare(CLONE_FS)", Err: err}
			return
		}
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS); err != nil {
			done <- &os.SyscallError{Syscall: "setns(mnt)", Err: err}
			return
		}
		done <- f()
	}()
	return <-done
}

// Detach unmounts, in the mount namespace of pid, everything at and below
// each of dirs (pod paths), lazily, deepest first.
func Detach(ctx context.Context, log *slog.Logger, pid int, dirs []string) error {
	// The pod's mount table, read from the host: in the pod's mount
	// namespace /proc is the pod's, where this process has no pid.
	mounts, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "mountinfo"))
	if err != nil {
		return fmt.Errorf("read the pod's mount table: %w", err)
	}
	targets := Under(string(mounts), dirs)
	return InMountNS(pid, func() error {
		var errs []error
		for _, t := range targets {
			log.DebugContext(ctx, "unmount in the pod", "target", t)
			if err := unix.Unmount(t, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, &os.PathError{Op: "umount", Path: t, Err: err})
			}
		}
		return errors.Join(errs...)
	})
}

// Under returns the mount points of a mountinfo table at or below one of
// dirs, deepest first (a stacked mount point once per mount).
func Under(mountinfo string, dirs []string) []string {
	var targets []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		for _, t := range dirs {
			t = path.Clean(t)
			if mp == t || strings.HasPrefix(mp, t+"/") {
				targets = append(targets, mp)
				break
			}
		}
	}
	slices.SortStableFunc(targets, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return targets
}

// unescapeMountinfo undoes the octal escapes of a mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
