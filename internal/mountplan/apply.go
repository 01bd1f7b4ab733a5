package mountplan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Unmounter undoes one mount. Apply uses it, when its Mounter implements
// it too, to undo the mounts of a plan that failed half-way. Unmounting a
// target that is not mounted is not an error.
type Unmounter interface {
	Unmount(ctx context.Context, target string) error
}

// Apply executes plan: it creates the directories and copies the trees
// itself and passes the mounts to m. Every path must be inside
// plan.PodDir, and no component of a path below plan.PodDir may be a
// symlink: the stage1 rootfs, in which the app targets are created, comes
// from an image.
//
// Apply stops at the first failure. It then unmounts, in reverse order, the
// mounts it made, if m is also an Unmounter; directories and copies are
// left for the removal of the pod directory.
func Apply(ctx context.Context, plan Plan, m Mounter) (err error) {
	var mounted []string
	defer func() {
		if err == nil {
			return
		}
		u, ok := m.(Unmounter)
		if !ok {
			return
		}
		undo := context.WithoutCancel(ctx)
		for i := len(mounted) - 1; i >= 0; i-- {
			if uerr := u.Unmount(undo, mounted[i]); uerr != nil {
				err = errors.Join(err, fmt.Errorf("undo mount on %s: %w", mounted[i], uerr))
			}
		}
	}()
	if err := checkAbs("pod directory", plan.PodDir); err != nil {
		return errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("apply mount plan: %w", err))
	}
	for i, s := range plan.Steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("apply mount plan for %s: %w", plan.PodDir, err)
		}
		if err := checkAbs("step path", s.Path); err != nil || !under(s.Path, plan.PodDir) {
			return errdefs.InvalidArgument("apply mount plan for %s: step %d (%s): path %q is not inside the pod directory", plan.PodDir, i, s.Action, s.Path)
		}
		switch s.Action {
		case ActionMkdir:
			if err := mkdirInside(plan.PodDir, s.Path); err != nil {
				return fmt.Errorf("apply mount plan for %s: %w", plan.PodDir, err)
			}
		case ActionMount:
			if s.Mount.Target != s.Path {
				return errdefs.InvalidArgument("apply mount plan for %s: step %d mounts on %q, not on its path %q", plan.PodDir, i, s.Mount.Target, s.Path)
			}
			if err := noSymlinks(plan.PodDir, s.Path); err != nil {
				return fmt.Errorf("apply mount plan for %s: %w", plan.PodDir, err)
			}
			if err := m.Mount(ctx, s.Mount); err != nil {
				return fmt.Errorf("apply mount plan for %s: %w", plan.PodDir, err)
			}
			mounted = append(mounted, s.Path)
		case ActionCopy:
			if err := noSymlinks(plan.PodDir, filepath.Dir(s.Path)); err != nil {
				return fmt.Errorf("apply mount plan for %s: %w", plan.PodDir, err)
			}
			if err := CopyTree(ctx, s.Source, s.Path); err != nil {
				return fmt.Errorf("apply mount plan for %s: %w", plan.PodDir, err)
			}
		default:
			return errdefs.InvalidArgument("apply mount plan for %s: step %d: unknown action %d", plan.PodDir, i, int(s.Action))
		}
	}
	return nil
}

// components returns the path components of path below root, which
// contains it.
func components(root, path string) []string {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, root), "/")
	if rel == "" {
		return nil
	}
	return strings.Split(rel, "/")
}

// mkdirInside creates path and its missing parents below root, mode 0755
// whatever the umask, refusing to go through a symlink or a non-directory.
func mkdirInside(root, path string) error {
	fi, err := os.Lstat(root)
	if err != nil {
		return errdefs.With(errdefs.ErrNotFound, fmt.Errorf("create %s: %w", path, err))
	}
	if !fi.IsDir() {
		return errdefs.FailedPrecondition("create %s: %s is not a directory", path, root)
	}
	cur := root
	for _, c := range components(root, path) {
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			err = os.Mkdir(cur, 0o755)
			if err == nil {
				err = os.Chmod(cur, 0o755) //nolint:gosec // G302: a directory, which needs x to be searched
			}
			if errors.Is(err, fs.ErrExist) {
				fi, err = os.Lstat(cur)
			} else if err == nil {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		if err := checkDir(path, cur, fi); err != nil {
			return err
		}
	}
	return nil
}

// noSymlinks checks that every existing component of path below root is
// a directory.
func noSymlinks(root, path string) error {
	cur := root
	for _, c := range components(root, path) {
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("check %s: %w", path, err)
		}
		if err := checkDir(path, cur, fi); err != nil {
			return err
		}
	}
	return nil
}

func checkDir(path, cur string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return errdefs.FailedPrecondition("use %s: %s is a symlink", path, cur)
	}
	if !fi.IsDir() {
		return errdefs.FailedPrecondition("use %s: %s is not a directory", path, cur)
	}
	return nil
}

// ApplyOverlayOrCopy makes the rootfses of cfg (whose Mode it ignores) with
// overlayfs and, when an overlay mount fails (no overlayfs, no privilege, a
// lower filesystem overlayfs refuses), undoes that attempt and copies the
// trees instead. It returns the mode it used and, when that is Copy, why
// overlayfs was not used (for the log); err is nil when the rootfses are
// complete.
//
// Trying the real mounts costs nothing where overlayfs works, which is
// nearly everywhere, whereas probing first (ProbeOverlay) costs a mount and
// an unmount per layer on every pod start, and an unmount of an overlay
// waits for an RCU grace period. The fallback needs m to be an Unmounter;
// if the failed attempt cannot be undone completely, the error is returned
// instead, and nothing is copied over a leftover mount.
func ApplyOverlayOrCopy(ctx context.Context, cfg Config, m Mounter) (mode Mode, overlayErr, err error) {
	cfg.Mode = Overlay
	plan, err := Build(cfg)
	if err != nil {
		// A path overlayfs options cannot carry: copy, if that is valid.
		cfg.Mode = Copy
		plan, cerr := Build(cfg)
		if cerr != nil {
			return 0, nil, cerr
		}
		if cerr := Apply(ctx, plan, m); cerr != nil {
			return 0, nil, cerr
		}
		return Copy, err, nil
	}
	w := &overlayWatch{Mounter: m}
	err = Apply(ctx, plan, w)
	if err == nil {
		return Overlay, nil, nil
	}
	if w.failed == nil || w.undoFailed || ctx.Err() != nil {
		return 0, nil, err
	}
	// Every overlay mount is undone, so the stage1 target holds at most
	// the empty directories made for app targets (with a real overlay
	// they went to its upper directory). The upper and work directories
	// are not needed by a copy.
	rerr := os.RemoveAll(filepath.Join(cfg.PodDir, stage1abi.OverlayDir))
	if rerr == nil {
		rerr = removeEmptyDirsIn(filepath.Join(cfg.PodDir, stage1abi.Stage1RootfsRel))
	}
	if rerr != nil {
		return 0, nil, errors.Join(err, fmt.Errorf("clear the overlay attempt: %w", rerr))
	}
	cfg.Mode = Copy
	if plan, err = Build(cfg); err != nil {
		return 0, nil, err
	}
	if err := Apply(ctx, plan, m); err != nil {
		return 0, nil, fmt.Errorf("copy the rootfses, overlayfs being unusable (%w): %w", w.failed, err)
	}
	return Copy, w.failed, nil
}

// overlayWatch passes mounts and unmounts on, and remembers whether an
// overlay mount failed and whether an unmount did.
type overlayWatch struct {
	Mounter
	failed     error
	undoFailed bool
}

func (w *overlayWatch) Mount(ctx context.Context, mt Mount) error {
	err := w.Mounter.Mount(ctx, mt)
	if err != nil && mt.FSType == "overlay" && ctx.Err() == nil {
		w.failed = err
	}
	return err
}

func (w *overlayWatch) Unmount(ctx context.Context, target string) error {
	u, ok := w.Mounter.(Unmounter)
	if !ok {
		w.undoFailed = true
		return errdefs.Newf(errdefs.ErrNotImplemented, "unmount %s: %T cannot unmount", target, w.Mounter)
	}
	err := u.Unmount(ctx, target)
	if err != nil {
		w.undoFailed = true
	}
	return err
}

// removeEmptyDirsIn removes the directories below dir that hold nothing
// but directories: a file, and a mount point (busy), stay where they are.
func removeEmptyDirsIn(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := removeEmptyDirsIn(p); err != nil {
			return err
		}
		// Best effort: what stays makes the copy fail, as not empty.
		_ = os.Remove(p)
	}
	return nil
}
