package mountplan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// mountInfoPath is the mount table of the calling process.
const mountInfoPath = "/proc/self/mountinfo"

// maxUnmountPasses bounds UnmountAll: each pass unmounts the top of every
// stack of mounts, so stacks deeper than this are reported as an error.
const maxUnmountPasses = 16

// Kernel is the Mounter that calls mount(2) and umount2(2). It needs
// CAP_SYS_ADMIN.
type Kernel struct{}

// Compile-time check: Apply can undo Kernel mounts.
var _ Unmounter = Kernel{}

// Mount calls mount(2).
func (Kernel) Mount(ctx context.Context, m Mount) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	for {
		err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return classifyErrno(err, fmt.Errorf("mount %s on %s: %w", m.FSType, m.Target, &os.PathError{Op: "mount", Path: m.Target, Err: err}))
		}
		return nil
	}
}

// Unmount unmounts the topmost mount on target, lazily if it is busy. A
// target that is not a mount point, or does not exist, is not an error.
func (Kernel) Unmount(ctx context.Context, target string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return unmount(target)
}

func unmount(target string) error {
	flags := unix.UMOUNT_NOFOLLOW
	for {
		err := unix.Unmount(target, flags)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EBUSY) && flags&unix.MNT_DETACH == 0:
			flags |= unix.MNT_DETACH
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not (or no longer) a mount point
		}
		return classifyErrno(err, fmt.Errorf("unmount %s: %w", target, &os.PathError{Op: "umount2", Path: target, Err: err}))
	}
}

// classifyErrno attaches the errdefs class of a mount(2) errno to wrapped.
func classifyErrno(errno, wrapped error) error {
	switch {
	case errors.Is(errno, unix.EPERM), errors.Is(errno, unix.EACCES):
		return errdefs.With(errdefs.ErrPermissionDenied, wrapped)
	case errors.Is(errno, unix.ENODEV):
		return errdefs.With(errdefs.ErrNotImplemented, wrapped)
	case errors.Is(errno, unix.ENOENT), errors.Is(errno, unix.ENOTDIR):
		return errdefs.With(errdefs.ErrNotFound, wrapped)
	case errors.Is(errno, unix.EBUSY):
		return errdefs.With(errdefs.ErrUnavailable, wrapped)
	case errors.Is(errno, unix.EINVAL):
		return errdefs.With(errdefs.ErrInvalidArgument, wrapped)
	}
	return wrapped
}

// resolveRoot returns the absolute, symlink-free form of root, as
// mountinfo shows it; a root that no longer exists is only cleaned.
func resolveRoot(root string) (string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", root, err)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r, nil
	}
	return abs, nil
}

// MountPointsUnder returns the mount points at or below root in the
// calling process's mount table, deepest first and, at equal depth, the
// most recent first, so that unmounting them in order always unmounts a
// mount before its parent. A mount point covered by several mounts appears
// once per mount.
func MountPointsUnder(ctx context.Context, root string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := resolveRoot(root)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(mountInfoPath)
	if err != nil {
		return nil, fmt.Errorf("list mounts under %s: %w", root, err)
	}
	defer func() { _ = f.Close() }()
	infos, err := ParseMountInfo(f)
	if err != nil {
		return nil, fmt.Errorf("list mounts under %s: %w", root, err)
	}
	type mp struct {
		path  string
		depth int
		order int
	}
	var mps []mp
	for i, in := range infos {
		// The kernel marks a mount point whose directory was removed.
		p := strings.TrimSuffix(in.MountPoint, " (deleted)")
		if under(p, r) {
			depth := strings.Count(p, "/")
			if p == "/" {
				depth = 0
			}
			mps = append(mps, mp{path: p, depth: depth, order: i})
		}
	}
	slices.SortStableFunc(mps, func(a, b mp) int {
		if a.depth != b.depth {
			return b.depth - a.depth
		}
		return b.order - a.order
	})
	out := make([]string, len(mps))
	for i, m := range mps {
		out[i] = m.path
	}
	return out, nil
}

// UnmountAll unmounts every mount at or below root, deepest first, lazily
// (MNT_DETACH) when one is busy, until /proc/self/mountinfo lists none.
// It is idempotent: with nothing mounted, or no root at all, it does
// nothing and needs no privileges.
func UnmountAll(ctx context.Context, root string) error {
	for range maxUnmountPasses {
		mps, err := MountPointsUnder(ctx, root)
		if err != nil {
			return fmt.Errorf("unmount all under %s: %w", root, err)
		}
		if len(mps) == 0 {
			return nil
		}
		var errs []error
		for _, p := range mps {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("unmount all under %s: %w", root, err)
			}
			if err := unmount(p); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == len(mps) {
			return fmt.Errorf("unmount all under %s: %w", root, errors.Join(errs...))
		}
	}
	return errdefs.Unavailable("unmount all under %s: mounts remain after %d passes", root, maxUnmountPasses)
}

// ProbeOverlay reports whether overlayfs can be used with each of lowers
// as the lower layer and upper and work directories on the filesystem of
// scratchDir, by mounting and unmounting a tiny overlay in a temporary
// directory under scratchDir. With no lowers it probes with an empty lower
// directory. A nil error means overlays can be used; otherwise the error
// says why, with the class of the mount failure (ErrPermissionDenied
// without privileges, ErrNotImplemented without overlayfs,
// ErrInvalidArgument for a lower filesystem overlayfs refuses).
func ProbeOverlay(ctx context.Context, scratchDir string, lowers ...string) (err error) {
	dir, err := os.MkdirTemp(scratchDir, ".overlay-probe-")
	if err != nil {
		return fmt.Errorf("probe overlayfs in %s: %w", scratchDir, err)
	}
	defer func() {
		if uerr := UnmountAll(context.WithoutCancel(ctx), dir); uerr != nil {
			err = errors.Join(err, uerr)
			return // never remove a directory something is mounted in
		}
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove overlayfs probe: %w", rerr))
		}
	}()
	if len(lowers) == 0 {
		empty := filepath.Join(dir, "lower")
		if err := os.Mkdir(empty, 0o755); err != nil {
			return fmt.Errorf("probe overlayfs in %s: %w", scratchDir, err)
		}
		lowers = []string{empty}
	}
	for i, lower := range lowers {
		if err := checkAbs("lower directory", lower); err != nil {
			return errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("probe overlayfs: %w", err))
		}
		if err := checkOverlayPath("lower directory", lower); err != nil {
			return errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("probe overlayfs: %w", err))
		}
		base := filepath.Join(dir, fmt.Sprint(i))
		upper, work, merged := filepath.Join(base, upperDir), filepath.Join(base, workDir), filepath.Join(base, "merged")
		for _, d := range []string{upper, work, merged} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("probe overlayfs in %s: %w", scratchDir, err)
			}
		}
		if err := (Kernel{}).Mount(ctx, OverlayMount(lower, upper, work, merged)); err != nil {
			return fmt.Errorf("probe overlayfs with lower %s in %s: %w", lower, scratchDir, err)
		}
		if err := unmount(merged); err != nil {
			return fmt.Errorf("probe overlayfs in %s: %w", scratchDir, err)
		}
	}
	return nil
}

// UnmountPod unmounts the rootfs mounts a plan of Build makes in podDir:
// each app's rootfs (found by listing stage1/rootfs/opt/stage2), then the
// stage1 rootfs, each as often as something is mounted on it. Unlike
// UnmountAll it reads no mount table, so its cost does not grow with the
// number of mounts on the host (every other pod's among them): statx(2)
// says whether a directory is the root of a mount. Mounts it does not know
// of stay; RemoveTree refuses to delete through them, and UnmountAll finds
// them. A pod directory with nothing mounted needs no privileges.
func UnmountPod(ctx context.Context, podDir string) error {
	stage1 := filepath.Join(podDir, stage1abi.Stage1RootfsRel)
	stage2 := filepath.Dir(filepath.Join(podDir, stage1abi.Stage2Dir("app")))
	ents, err := os.ReadDir(stage2)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("unmount pod %s: list apps: %w", podDir, err)
	}
	var targets []string
	for _, e := range ents {
		if e.IsDir() {
			targets = append(targets, filepath.Join(stage2, e.Name(), "rootfs"))
		}
	}
	for _, t := range append(targets, stage1) {
		if err := unmountStack(ctx, t); err != nil {
			return fmt.Errorf("unmount pod %s: %w", podDir, err)
		}
	}
	return nil
}

// unmountStack unmounts target until it is no longer a mount point.
func unmountStack(ctx context.Context, target string) error {
	for range maxUnmountPasses {
		if err := ctx.Err(); err != nil {
			return err
		}
		root, err := isMountRoot(target)
		if err != nil || !root {
			return err
		}
		if err := unmount(target); err != nil {
			return err
		}
	}
	return errdefs.Unavailable("unmount %s: still mounted after %d unmounts", target, maxUnmountPasses)
}

// isMountRoot reports whether path (not followed if a symlink) is the root
// of a mount. A missing path is not. Where statx cannot tell (before Linux
// 5.8), it says yes, and unmount finds out.
func isMountRoot(path string) (bool, error) {
	var st unix.Statx_t
	for {
		err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_TYPE, &st)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
			return false, nil
		case err != nil:
			return false, &os.PathError{Op: "statx", Path: path, Err: err}
		}
		if st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
			return true, nil
		}
		return st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
	}
}

// ErrMountInside is the class of RemoveTree's error when it meets a mount
// point: a FailedPrecondition, since unmounting first resolves it.
var ErrMountInside = errdefs.Newf(errdefs.ErrFailedPrecondition, "something is mounted inside")

// RemoveTree deletes path and everything below it, like os.RemoveAll, but
// never crosses into another mount: every directory is opened with
// openat2(2) RESOLVE_NO_XDEV, so a mount point (a bind-mounted host
// directory, say) stops it with an error wrapping ErrMountInside instead of
// its contents being deleted. What it deleted before is gone. It costs
// what the tree holds, not what the host has mounted. A missing path is
// not an error.
func RemoveTree(path string) error {
	dir, err := os.Open(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	defer func() { _ = dir.Close() }()
	if err := removeAt(int(dir.Fd()), filepath.Base(path), path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// removeAt removes name in the directory dirfd; path names it for errors.
func removeAt(dirfd int, name, path string) error {
	err := ignoringEINTR(func() error { return unix.Unlinkat(dirfd, name, 0) })
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%s: %w", path, ErrMountInside)
	case !errors.Is(err, unix.EISDIR):
		return &os.PathError{Op: "unlinkat", Path: path, Err: err}
	}
	var fd int
	err = ignoringEINTR(func() (err error) {
		fd, err = unix.Openat2(dirfd, name, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH,
		})
		return err
	})
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%s: %w", path, ErrMountInside)
	case err != nil:
		return &os.PathError{Op: "openat2", Path: path, Err: err}
	}
	d := os.NewFile(uintptr(fd), path)
	defer func() { _ = d.Close() }()
	for {
		names, rerr := d.Readdirnames(1024)
		for _, n := range names {
			if err := removeAt(fd, n, filepath.Join(path, n)); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) || (rerr == nil && len(names) == 0) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("list %s: %w", path, rerr)
		}
	}
	err = ignoringEINTR(func() error { return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) })
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%s: %w", path, ErrMountInside)
	}
	return &os.PathError{Op: "rmdir", Path: path, Err: err}
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
