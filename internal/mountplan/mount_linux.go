package mountplan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
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
	defer f.Close()
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
