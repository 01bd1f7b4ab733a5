// Package podmount makes the mounts of a stage1 mount plan (stage1-fly/fly)
// inside an app's rootfs: the in-root appmount.Mounter both flavors use, the
// empty-volume directories, and mount(2)/mount_setattr(2) wrappers that
// retry EINTR and name the in-root target in errors. It runs in stage1,
// as root, in the pod's mount namespace.
package podmount

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/appmount"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// retryEINTR runs fn again while it fails with EINTR.
func retryEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Mount wraps Mount(2) with an error naming the source and the in-root
// target (the syscall sees a /proc/self/fd path).
func Mount(source, target, fstype string, flags uintptr, data, name string) error {
	err := retryEINTR(func() error { return unix.Mount(source, target, fstype, flags, data) })
	if err != nil {
		return &os.PathError{Op: "mount " + source, Path: name, Err: err}
	}
	return nil
}

// SetMountAttrs sets attrs on the mount f is open on, and on the mounts
// below it when recursive, with mount_setattr(2).
func SetMountAttrs(f *os.File, attrs uint64, recursive bool, name string) error {
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

// InRoot is the real appmount.Mounter: it makes each mount inside an app's
// rootfs, resolving every target in-root and, for host volumes, the source
// without symlinks. Both flavors use it, in the process that owns the
// pod's mount namespace.
type InRoot struct {
	Root *os.File // O_PATH handle on the rootfs mount
	Log  *slog.Logger
	// Clones, by the bind's Target, are detached copies (open_tree
	// OPEN_TREE_CLONE) of bind sources, made by the caller before its
	// mounts left their peer groups: such a bind moves its clone into
	// place (move_mount) instead of binding the source.
	Clones map[string]*os.File
}

var _ appmount.Mounter = InRoot{}

// Mount performs one plan step.
func (m InRoot) Mount(ctx context.Context, mt appmount.Mount) error {
	switch mt.Kind {
	case appmount.KindFS:
		return m.mountFS(mt)
	case appmount.KindBind:
		return m.bind(ctx, mt)
	default:
		return errdefs.InvalidArgument("unknown mount kind %q", mt.Kind)
	}
}

func (m InRoot) mountFS(mt appmount.Mount) error {
	target, err := inroot.MkdirAll(m.Root, mt.Target, 0o755)
	if err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	defer func() { _ = target.Close() }()
	var flags uintptr
	for f, ms := range map[appmount.MountFlags]uintptr{appmount.ReadOnly: unix.MS_RDONLY, appmount.NoSuid: unix.MS_NOSUID, appmount.NoDev: unix.MS_NODEV, appmount.NoExec: unix.MS_NOEXEC} {
		if mt.Flags&f != 0 {
			flags |= ms
		}
	}
	return Mount(mt.Source, inroot.FDPath(target), mt.FSType, flags, mt.Data, mt.Target)
}

func (m InRoot) bind(ctx context.Context, mt appmount.Mount) error {
	var src *os.File
	var err error
	clone := m.Clones[mt.Target]
	if clone != nil {
		// The caller's: not closed here.
		if src, err = os.OpenFile(inroot.FDPath(clone), unix.O_PATH, 0); err != nil {
			return fmt.Errorf("%s: reopen the source's clone: %w", mt.Purpose, err)
		}
	} else if mt.SourceNoSymlinks {
		src, err = inroot.OpenNoSymlinks(mt.Source, unix.O_PATH)
	} else {
		src, err = os.OpenFile(mt.Source, unix.O_PATH, 0)
	}
	if err != nil {
		if mt.Fallback && errors.Is(err, fs.ErrNotExist) {
			m.Log.DebugContext(ctx, "skip fallback mount: no source on the host", "source", mt.Source)
			return nil
		}
		return SourceError(mt, err)
	}
	defer func() { _ = src.Close() }()
	st, err := src.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", mt.Source, err)
	}
	if mt.Fallback {
		exists, err := inroot.Exists(m.Root, mt.Target)
		if err == nil && exists {
			m.Log.DebugContext(ctx, "skip fallback mount: the rootfs has its own", "target", mt.Target)
			return nil
		}
	}
	var target *os.File
	switch {
	case mt.TargetMustExist:
		target, err = inroot.Open(m.Root, mt.Target, unix.O_PATH)
		if errors.Is(err, fs.ErrNotExist) {
			m.Log.WarnContext(ctx, "not mounted: the target lies in a volume that does not have it", "target", mt.Target, "purpose", mt.Purpose)
			return nil
		}
	case st.IsDir():
		target, err = inroot.MkdirAll(m.Root, mt.Target, 0o755)
	default:
		target, err = inroot.CreateFile(m.Root, mt.Target, 0o644)
	}
	if err != nil {
		if mt.Fallback {
			m.Log.DebugContext(ctx, "skip fallback mount: cannot create the target", "target", mt.Target, "err", err)
			return nil
		}
		return fmt.Errorf("create mount point: %w", err)
	}
	defer func() { _ = target.Close() }()
	flags := uintptr(unix.MS_BIND)
	rec := mt.Flags&appmount.Recursive != 0
	if rec {
		flags |= unix.MS_REC
	}
	if clone != nil {
		if err := unix.MoveMount(int(clone.Fd()), "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
			return &os.PathError{Op: "move_mount", Path: mt.Target, Err: err}
		}
	} else if err := Mount(inroot.FDPath(src), inroot.FDPath(target), "", flags, "", mt.Target); err != nil {
		return err
	}
	var attrs uint64
	for f, a := range map[appmount.MountFlags]uint64{appmount.ReadOnly: unix.MOUNT_ATTR_RDONLY, appmount.NoSuid: unix.MOUNT_ATTR_NOSUID, appmount.NoDev: unix.MOUNT_ATTR_NODEV, appmount.NoExec: unix.MOUNT_ATTR_NOEXEC} {
		if mt.Flags&f != 0 {
			attrs |= a
		}
	}
	if attrs == 0 && mt.Propagation == "" {
		return nil
	}
	// target still names the covered directory: resolve the new mount.
	top, err := inroot.Open(m.Root, mt.Target, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("open new mount: %w", err)
	}
	defer func() { _ = top.Close() }()
	if mt.Flags&appmount.ReadOnlyTop != 0 && attrs&unix.MOUNT_ATTR_RDONLY != 0 {
		// Read-only the mount itself, not those a recursive bind
		// copied below it.
		if err := SetMountAttrs(top, unix.MOUNT_ATTR_RDONLY, false, mt.Target); err != nil {
			return err
		}
		attrs &^= unix.MOUNT_ATTR_RDONLY
	}
	if attrs != 0 {
		if err := SetMountAttrs(top, attrs, rec, mt.Target); err != nil {
			return err
		}
	}
	return SetPropagation(top, mt.Propagation, mt.Target)
}

// propagationFlags are the mount(2) flags of the stage1abi.Propagation*
// values; each applies to the mounts below too.
var propagationFlags = map[string]uintptr{
	stage1abi.PropagationPrivate: unix.MS_PRIVATE | unix.MS_REC,
	stage1abi.PropagationSlave:   unix.MS_SLAVE | unix.MS_REC,
	stage1abi.PropagationShared:  unix.MS_SHARED | unix.MS_REC,
}

// SetPropagation sets the propagation type p (a stage1abi.Propagation*
// value) of the mount f is open on and of those below it; empty does
// nothing. Making a mount shared that is a peer of the host's already
// keeps it in the host's peer group.
func SetPropagation(f *os.File, p, name string) error {
	if p == "" {
		return nil
	}
	flags, ok := propagationFlags[p]
	if !ok {
		return errdefs.InvalidArgument("%s: unknown mount propagation %q", name, p)
	}
	return Mount("", inroot.FDPath(f), "", flags, "", name)
}

// SourceError classifies a failure to open a bind source.
func SourceError(mt appmount.Mount, err error) error {
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

// MakeEmptyVolumes creates the host directories of empty volumes under the
// pod directory with their mode and owner. An existing directory (not a
// symlink) is reused.
func MakeEmptyVolumes(vols []appmount.EmptyVolume) error {
	for _, v := range vols {
		if err := os.MkdirAll(filepath.Dir(v.Path), 0o755); err != nil {
			return fmt.Errorf("empty volume %s: %w", v.Name, err)
		}
		if err := os.Mkdir(v.Path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("empty volume %s: %w", v.Name, err)
		}
		st, err := os.Lstat(v.Path)
		if err != nil {
			return fmt.Errorf("empty volume %s: %w", v.Name, err)
		}
		if !st.IsDir() {
			return errdefs.FailedPrecondition("empty volume %s: %s exists and is not a directory", v.Name, v.Path)
		}
		// chown first: it clears set-id bits the mode may ask for.
		if err := os.Lchown(v.Path, v.UID, v.GID); err != nil {
			return fmt.Errorf("empty volume %s: %w", v.Name, err)
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, v.Path, uint32(v.Mode), 0); err != nil {
			return fmt.Errorf("empty volume %s: %w", v.Name, &os.PathError{Op: "chmod", Path: v.Path, Err: err})
		}
	}
	return nil
}
