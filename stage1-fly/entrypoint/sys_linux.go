package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/fly"
	"github.com/nosecone/nscn/stage1-fly/inroot"
)

// retryEINTR runs fn again while it fails with EINTR.
func retryEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// mount wraps mount(2) with an error naming the source and the in-root
// target (the syscall sees a /proc/self/fd path).
func mount(source, target, fstype string, flags uintptr, data, name string) error {
	err := retryEINTR(func() error { return unix.Mount(source, target, fstype, flags, data) })
	if err != nil {
		return &os.PathError{Op: "mount " + source, Path: name, Err: err}
	}
	return nil
}

// setMountAttrs sets attrs on the mount f is open on, and on the mounts
// below it when recursive, with mount_setattr(2).
func setMountAttrs(f *os.File, attrs uint64, recursive bool, name string) error {
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	err := retryEINTR(func() error {
		return unix.MountSetattr(int(f.Fd()), "", flags, &unix.MountAttr{Attr_set: attrs})
	})
	if errors.Is(err, unix.ENOSYS) {
		return &os.PathError{Op: "mount_setattr (needs Linux 5.12 or newer)", Path: name, Err: err}
	}
	if err != nil {
		return &os.PathError{Op: "mount_setattr", Path: name, Err: err}
	}
	return nil
}

// cloexecInherited marks every descriptor above 2 close-on-exec, so that
// only what a child is given explicitly reaches it. Descriptors the Go
// runtime opens already are; this catches those inherited from stage0.
func cloexecInherited() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		// The directory descriptor ReadDir used is closed by now: EBADF.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// exitStatus turns a wait status into the status run reports:
// the exit code, or SignalStatusBase plus the signal number.
func exitStatus(ps *os.ProcessState) int {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return stage1abi.SignalStatusBase + int(ws.Signal())
	}
	return ps.ExitCode()
}

// sysMounter is the real fly.Mounter: it makes each mount inside the app's
// rootfs, resolving every target in-root. It runs in the pod process,
// in its private mount namespace.
type sysMounter struct {
	root *os.File // O_PATH handle on the rootfs mount
	log  *slog.Logger
}

var _ fly.Mounter = sysMounter{}

// Mount performs one plan step.
func (m sysMounter) Mount(ctx context.Context, mt fly.Mount) error {
	switch mt.Kind {
	case fly.KindFS:
		return m.mountFS(mt)
	case fly.KindBind:
		return m.bind(ctx, mt)
	default:
		return errdefs.InvalidArgument("unknown mount kind %q", mt.Kind)
	}
}

func (m sysMounter) mountFS(mt fly.Mount) error {
	target, err := inroot.MkdirAll(m.root, mt.Target, 0o755)
	if err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	defer target.Close()
	var flags uintptr
	for f, ms := range map[fly.MountFlags]uintptr{fly.ReadOnly: unix.MS_RDONLY, fly.NoSuid: unix.MS_NOSUID, fly.NoDev: unix.MS_NODEV, fly.NoExec: unix.MS_NOEXEC} {
		if mt.Flags&f != 0 {
			flags |= ms
		}
	}
	return mount(mt.Source, inroot.FDPath(target), mt.FSType, flags, mt.Data, mt.Target)
}

func (m sysMounter) bind(ctx context.Context, mt fly.Mount) error {
	var src *os.File
	var err error
	if mt.SourceNoSymlinks {
		src, err = inroot.OpenNoSymlinks(mt.Source, unix.O_PATH)
	} else {
		src, err = os.OpenFile(mt.Source, unix.O_PATH, 0)
	}
	if err != nil {
		if mt.Fallback && errors.Is(err, fs.ErrNotExist) {
			m.log.DebugContext(ctx, "skip fallback mount: no source on the host", "source", mt.Source)
			return nil
		}
		return sourceError(mt, err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", mt.Source, err)
	}
	if mt.Fallback {
		exists, err := inroot.Exists(m.root, mt.Target)
		if err == nil && exists {
			m.log.DebugContext(ctx, "skip fallback mount: the rootfs has its own", "target", mt.Target)
			return nil
		}
	}
	var target *os.File
	if st.IsDir() {
		target, err = inroot.MkdirAll(m.root, mt.Target, 0o755)
	} else {
		target, err = inroot.CreateFile(m.root, mt.Target, 0o644)
	}
	if err != nil {
		if mt.Fallback {
			m.log.DebugContext(ctx, "skip fallback mount: cannot create the target", "target", mt.Target, "err", err)
			return nil
		}
		return fmt.Errorf("create mount point: %w", err)
	}
	defer target.Close()
	flags := uintptr(unix.MS_BIND)
	rec := mt.Flags&fly.Recursive != 0
	if rec {
		flags |= unix.MS_REC
	}
	if err := mount(inroot.FDPath(src), inroot.FDPath(target), "", flags, "", mt.Target); err != nil {
		return err
	}
	var attrs uint64
	for f, a := range map[fly.MountFlags]uint64{fly.ReadOnly: unix.MOUNT_ATTR_RDONLY, fly.NoSuid: unix.MOUNT_ATTR_NOSUID, fly.NoDev: unix.MOUNT_ATTR_NODEV, fly.NoExec: unix.MOUNT_ATTR_NOEXEC} {
		if mt.Flags&f != 0 {
			attrs |= a
		}
	}
	if attrs == 0 {
		return nil
	}
	// target still names the covered directory: resolve the new mount.
	top, err := inroot.Open(m.root, mt.Target, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("open new mount: %w", err)
	}
	defer top.Close()
	return setMountAttrs(top, attrs, rec, mt.Target)
}

// sourceError classifies a failure to open a bind source.
func sourceError(mt fly.Mount, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return errdefs.NotFound("%s: source %s does not exist on the host", mt.Purpose, mt.Source)
	case errors.Is(err, unix.ELOOP):
		return errdefs.FailedPrecondition("%s: source %s is or passes through a symbolic link, which appc forbids for host volumes", mt.Purpose, mt.Source)
	case errors.Is(err, unix.ENOTDIR):
		return errdefs.NotFound("%s: source %s does not exist on the host (a parent is not a directory)", mt.Purpose, mt.Source)
	default:
		return fmt.Errorf("%s: open source: %w", mt.Purpose, err)
	}
}

// rootFS is an fs.FS over an app rootfs that treats it as hostile: every
// path is resolved in-root without magic links (inroot), and only regular
// files and directories can be opened, without blocking (no FIFO can
// stall the pod process).
type rootFS struct{ root *os.File }

var _ fs.StatFS = rootFS{}

// Open opens name, an fs.FS path relative to the rootfs.
func (r rootFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := inroot.Open(r.root, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() && !st.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: "/" + name, Err: errors.New("not a regular file or directory")}
	}
	return f, nil
}

// Stat stats name without opening it for reading.
func (r rootFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	f, err := inroot.Open(r.root, name, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// openPodRoot opens /proc/pid/root and checks that it is the app's rootfs
// (hostRootfs, as the host sees it): same device and inode. That guards
// enter and stop against a stale pid file whose pid was reused.
func openPodRoot(pid int, hostRootfs string) (*os.File, error) {
	f, err := os.OpenFile(path.Join("/proc", strconv.Itoa(pid), "root"), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.With(errdefs.ErrNotFound, fmt.Errorf("pod process %d is not running: %w", pid, err))
		}
		return nil, fmt.Errorf("open root of pod process %d: %w", pid, err)
	}
	var got, want unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &got); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if err := unix.Stat(hostRootfs, &want); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "stat", Path: hostRootfs, Err: err}
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		f.Close()
		return nil, errdefs.NotFound("process %d is not this pod's process: its root is not the app's rootfs", pid)
	}
	return f, nil
}
