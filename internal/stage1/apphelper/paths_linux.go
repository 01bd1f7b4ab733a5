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
	"github.com/nosecone/nscn/internal/stage1/podmount"
)

// restrictPaths applies the policy's restricted /proc and /sys paths in
// the app's rootfs, after the plan mounted /proc and /sys there: a
// read-only path gets a read-only recursive clone of itself on top, a
// masked file /dev/null (read-only), a masked directory an empty read-only
// tmpfs. Every path is resolved in-root; one the rootfs lacks is skipped.
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
		err = cloneOnto(t, int(t.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, path)
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
			err = podmount.Mount("tmpfs", inroot.FDPath(t), "tmpfs",
				unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0,mode=0555", path)
		} else {
			// The pod's own /dev/null: the helper runs in the pod's root.
			err = cloneOnto(t, unix.AT_FDCWD, "/dev/null", 0, path)
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
