package stage1

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
)

// resolveEntrypoint returns the host path of entrypoint in rootfs, the
// rootfs of the complete rendered tree at treeDir, once it has checked that
// executing that path as root on the host executes the file the store
// rendered there:
//
//   - entrypoint is resolved inside rootfs (openat2 RESOLVE_IN_ROOT, or
//     filepath-securejoin's emulation on older kernels): "..", absolute
//     and relative symlinks all stay in the tree, so no symlink leads out
//     of it. The path returned is the resolved one, which holds no
//     symlink below treeDir, and it names the very file that was opened
//     and checked;
//   - the file is a regular file, executable, owned by root or by the
//     user nscn runs as, and not writable by group or others;
//   - every directory from the file's up to treeDir is owned by root or
//     by that user and not writable by group or others.
//
// That suffices because nothing else can write there. Pods never write to
// a tree: the stage1 rootfs a pod sees and writes is an overlayfs whose
// tree is the read-only lower layer (or a copy of the tree), so what an
// app changes lands in the pod directory, never in the store, and the
// store's tree directories are mode 0700 under the data directory. A
// tree the checks pass is therefore one that only root (or nscn's user)
// could have changed since the store rendered it, and those can run
// anything anyway. The content hash (nscn image verify) is not
// recomputed: it would cost a walk of the whole stage1 on every enter,
// stop and gc, and protects only against writers that these checks
// already exclude.
func resolveEntrypoint(treeDir, rootfs, entrypoint string) (string, error) {
	root, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: the rootfs of a tree of the store, opened O_PATH to resolve in
	if err != nil {
		return "", fmt.Errorf("open stage1 rootfs: %w", err)
	}
	defer func() { _ = root.Close() }()
	realRoot, err := procfs.ProcSelfFdReadlink(root)
	if err != nil {
		return "", fmt.Errorf("resolve stage1 rootfs: %w", err)
	}
	f, err := pathrs.OpenatInRoot(root, entrypoint)
	if errors.Is(err, fs.ErrNotExist) {
		return "", errdefs.With(errdefs.ErrFailedPrecondition, fmt.Errorf("not in the stage1's rendered tree: %w", err))
	}
	if err != nil {
		return "", fmt.Errorf("resolve in the stage1's rendered tree: %w", err)
	}
	defer func() { _ = f.Close() }()
	path, err := procfs.ProcSelfFdReadlink(f)
	if err != nil {
		return "", fmt.Errorf("resolve in the stage1's rendered tree: %w", err)
	}
	if !strings.HasPrefix(path, realRoot+"/") {
		return "", errdefs.FailedPrecondition("resolves to %s, outside the stage1's rendered tree %s", path, realRoot)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", errdefs.FailedPrecondition("%s is not a regular file", path)
	}
	if st.Mode&0o111 == 0 {
		return "", errdefs.FailedPrecondition("%s is not executable", path)
	}
	if err := checkOwner(path, &st); err != nil {
		return "", err
	}
	// The path that exec walks names the file checked: no symlink was
	// swapped in since.
	var lst unix.Stat_t
	if err := unix.Lstat(path, &lst); err != nil {
		return "", &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if lst.Dev != st.Dev || lst.Ino != st.Ino {
		return "", errdefs.FailedPrecondition("%s changed while it was checked", path)
	}
	realTree, err := filepath.EvalSymlinks(treeDir)
	if err != nil {
		return "", fmt.Errorf("resolve stage1 tree: %w", err)
	}
	if !strings.HasPrefix(path, realTree+"/") {
		return "", errdefs.FailedPrecondition("resolves to %s, outside the stage1's tree %s", path, realTree)
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		var dst unix.Stat_t
		if err := unix.Lstat(dir, &dst); err != nil {
			return "", &os.PathError{Op: "lstat", Path: dir, Err: err}
		}
		if dst.Mode&unix.S_IFMT != unix.S_IFDIR {
			return "", errdefs.FailedPrecondition("%s is not a directory", dir)
		}
		if err := checkOwner(dir, &dst); err != nil {
			return "", err
		}
		if dir == realTree {
			return path, nil
		}
	}
}

// checkOwner refuses a file or directory that someone other than root or
// the user nscn runs as owns or may write.
func checkOwner(path string, st *unix.Stat_t) error {
	if st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return errdefs.FailedPrecondition("%s is owned by uid %d, not by root", path, st.Uid)
	}
	if st.Mode&0o022 != 0 {
		return errdefs.FailedPrecondition("%s is writable by group or others (mode %04o)", path, st.Mode&0o7777)
	}
	return nil
}
