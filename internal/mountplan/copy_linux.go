package mountplan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
)

// CopyTree copies the directory tree at src to dst with the semantics of
// cp -a: it keeps modes (with setuid, setgid and sticky bits), owners,
// extended attributes, access and modification times, symlinks (never
// followed), device nodes, FIFOs and sockets, and hard links between files
// of the tree. dst must not exist, or be an empty directory; its parent
// must exist.
//
// Without root, owners are kept only where the caller may chown, and
// trusted.* and security.* attributes are skipped, as cp -a does. An
// attribute the destination filesystem cannot store (ENOTSUP) is skipped.
func CopyTree(ctx context.Context, src, dst string) error {
	c := &copier{ctx: ctx, privileged: os.Geteuid() == 0, links: make(map[inode]string)}
	if err := c.copyTree(src, dst); err != nil {
		return fmt.Errorf("copy tree %s to %s: %w", src, dst, err)
	}
	return nil
}

type inode struct{ dev, ino uint64 }

type pendingDir struct {
	path string
	st   unix.Stat_t
}

type copier struct {
	ctx        context.Context
	privileged bool
	links      map[inode]string // first copy of each multiply-linked inode
	dirs       []pendingDir     // mode and times applied once filled
}

func (c *copier) copyTree(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return errdefs.With(errdefs.ErrNotFound, &os.PathError{Op: "lstat", Path: src, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return errdefs.InvalidArgument("source %s is not a directory", src)
	}
	if err := prepareDest(dst); err != nil {
		return err
	}
	err := filepath.WalkDir(src, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := c.ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		return c.copyEntry(path, filepath.Join(dst, rel), rel == ".")
	})
	if err != nil {
		return err
	}
	// Deepest first, so that a directory's time is set after its children
	// are written and its mode after they are created.
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := c.finishMeta(d.path, &d.st); err != nil {
			return err
		}
	}
	return nil
}

// prepareDest creates dst, or accepts it if it is an empty directory.
func prepareDest(dst string) error {
	err := os.Mkdir(dst, 0o700)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dst)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errdefs.AlreadyExists("destination %s exists and is not a directory", dst)
	}
	f, err := os.Open(dst) //nolint:gosec // G304: a directory of the copy plan, checked above
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return errdefs.AlreadyExists("destination %s is not empty", dst)
	}
	return nil
}

func (c *copier) copyEntry(src, dst string, isRoot bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && st.Nlink > 1 {
		key := inode{dev: st.Dev, ino: st.Ino}
		if first, ok := c.links[key]; ok {
			return os.Link(first, dst)
		}
		c.links[key] = dst
	}
	switch typ {
	case unix.S_IFDIR:
		if !isRoot {
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
		}
		if err := c.ownerAndXattrs(src, dst, &st); err != nil {
			return err
		}
		c.dirs = append(c.dirs, pendingDir{path: dst, st: st})
		return nil
	case unix.S_IFREG:
		if err := copyFile(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil { //nolint:gosec // G115: unix.Mknod takes the 64-bit dev_t as an int
			return classifyErrno(err, &os.PathError{Op: "mknod", Path: dst, Err: err})
		}
	default:
		return errdefs.InvalidArgument("%s has unknown file type %#o", src, typ)
	}
	if err := c.ownerAndXattrs(src, dst, &st); err != nil {
		return err
	}
	return c.finishMeta(dst, &st)
}

func copyFile(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0) //nolint:gosec // G304: a file of the copy plan, opened with O_NOFOLLOW
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600) //nolint:gosec // G304: a file of the copy plan, created with O_EXCL|O_NOFOLLOW
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// ownerAndXattrs sets the owner first, since chown clears the setuid bits
// and file capabilities, then the extended attributes.
func (c *copier) ownerAndXattrs(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		if c.privileged || !errors.Is(err, unix.EPERM) {
			return &os.PathError{Op: "lchown", Path: dst, Err: err}
		}
	}
	return c.copyXattrs(src, dst)
}

// finishMeta sets the mode (except on symlinks, which have none) and the
// times.
func (c *copier) finishMeta(dst string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: dst, Err: err}
	}
	return nil
}

func (c *copier) copyXattrs(src, dst string) error {
	names, err := listXattrs(src)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return &os.PathError{Op: "llistxattr", Path: src, Err: err}
	}
	for _, name := range names {
		val, err := getXattr(src, name)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue // removed meanwhile
			}
			return &os.PathError{Op: "lgetxattr " + name, Path: src, Err: err}
		}
		if err := unix.Lsetxattr(dst, name, val, 0); err != nil {
			switch {
			case errors.Is(err, unix.ENOTSUP):
				continue
			case !c.privileged && errors.Is(err, unix.EPERM) &&
				(strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")):
				continue
			}
			return &os.PathError{Op: "lsetxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}

func listXattrs(path string) ([]string, error) {
	for {
		n, err := unix.Llistxattr(path, nil)
		if err != nil || n == 0 {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name != "" {
				names = append(names, name)
			}
		}
		return names, nil
	}
}

func getXattr(path, name string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
