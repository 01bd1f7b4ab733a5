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
				err = os.Chmod(cur, 0o755)
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
