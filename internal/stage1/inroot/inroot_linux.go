package inroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveInRoot confines resolution to the root and refuses magic links
// (/proc/self/root and friends), which could otherwise jump out of it.
const resolveInRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// maxRetries bounds retries of openat2, which returns EAGAIN when a
// concurrent rename races a RESOLVE_IN_ROOT lookup.
const maxRetries = 32

// openat2 wraps unix.Openat2 with EINTR and EAGAIN retries and an
// *os.PathError naming path.
func openat2(dirfd int, path string, how *unix.OpenHow) (*os.File, error) {
	how.Flags |= unix.O_CLOEXEC
	var fd int
	var err error
	for range maxRetries {
		fd, err = unix.Openat2(dirfd, path, how)
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
			break
		}
	}
	if errors.Is(err, unix.ENOSYS) {
		return nil, &os.PathError{Op: "openat2 (needs Linux 5.6 or newer)", Path: path, Err: err}
	}
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// relative turns an in-root path ("/a/../b", "b/") into the cleaned,
// relative form openat2 takes ("b"), or "." for the root itself.
func relative(path string) string {
	c := filepath.Clean("/" + path)
	if c == "/" {
		return "."
	}
	return c[1:]
}

// OpenRoot opens dir, a trusted host path, as the O_PATH handle the other
// functions take as root.
func OpenRoot(dir string) (*os.File, error) {
	return openat2(unix.AT_FDCWD, dir, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY})
}

// Open opens path inside root with the open(2) flags given (O_CLOEXEC is
// always added). Symlinks are followed, within root.
func Open(root *os.File, path string, flags int) (*os.File, error) {
	f, err := openat2(int(root.Fd()), relative(path), &unix.OpenHow{Flags: uint64(flags), Resolve: resolveInRoot}) //nolint:gosec // G115: open flags are non-negative
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Exists reports whether path resolves inside root. A dangling symlink does
// not exist; any error other than ENOENT is returned.
func Exists(root *os.File, path string) (bool, error) {
	f, err := Open(root, path, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, f.Close()
}

// MkdirAll makes sure path is a directory inside root, creating it and any
// missing parents with mode (minus the umask), and returns an O_PATH handle
// to it. An existing component that is not a directory is an error, and so
// is a dangling symlink in the way.
func MkdirAll(root *os.File, path string, mode uint32) (_ *os.File, err error) {
	rel := relative(path)
	cur, err := Open(root, ".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil || rel == "." {
		return cur, err
	}
	defer func() {
		if err != nil {
			_ = cur.Close()
		}
	}()
	parts := strings.Split(rel, "/")
	for i, name := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		next, err := Open(root, prefix, unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) {
			// Create the component in the directory its parent resolved
			// to, then resolve the whole prefix again from the root.
			if err := unix.Mkdirat(int(cur.Fd()), name, mode); err != nil && !errors.Is(err, unix.EEXIST) {
				return nil, &os.PathError{Op: "mkdirat", Path: "/" + prefix, Err: err}
			}
			next, err = Open(root, prefix, unix.O_PATH|unix.O_DIRECTORY)
		}
		if errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%s exists and is not a directory: %w", "/"+prefix, err)
		}
		if err != nil {
			return nil, err
		}
		_ = cur.Close()
		cur = next
	}
	return cur, nil
}

// CreateFile makes sure path is a regular file inside root and returns an
// O_PATH handle to it. A missing file is created empty with mode (O_EXCL,
// O_NOFOLLOW), missing parents as with MkdirAll(…, 0o755). An existing
// regular file, possibly behind an in-root symlink, is reused.
func CreateFile(root *os.File, path string, mode uint32) (*os.File, error) {
	rel := relative(path)
	if rel == "." {
		return nil, fmt.Errorf("create file /: the root is a directory")
	}
	parent, err := MkdirAll(root, filepath.Dir(rel), 0o755)
	if err != nil {
		return nil, err
	}
	defer func() { _ = parent.Close() }()
	fd, err := unix.Openat(int(parent.Fd()), filepath.Base(rel), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, mode)
	switch {
	case err == nil:
		_ = unix.Close(fd)
	case !errors.Is(err, unix.EEXIST):
		return nil, &os.PathError{Op: "create", Path: "/" + rel, Err: err}
	}
	f, err := Open(root, rel, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		_ = f.Close()
		return nil, &os.PathError{Op: "fstat", Path: "/" + rel, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		_ = f.Close()
		return nil, fmt.Errorf("/%s exists and is not a regular file", rel)
	}
	return f, nil
}

// OpenNoSymlinks opens an absolute host path with the open(2) flags given,
// failing with ELOOP if the path or any of its parents is a symlink.
func OpenNoSymlinks(path string, flags int) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, &os.PathError{Op: "open", Path: path, Err: errors.New("path is not absolute")}
	}
	return openat2(unix.AT_FDCWD, path, &unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}) //nolint:gosec // G115: open flags are non-negative
}

// FDPath is the /proc/self/fd path of f, which mount(2) and chroot(2)
// follow to exactly the object f was opened on.
func FDPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }
