package crilog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// openBeneath opens rel beneath the directory dir without following a
// symbolic link in any component of rel, nor leaving dir by "..".
func openBeneath(dir, rel string, flags int, mode uint32) (*os.File, error) {
	rel = filepath.Clean(rel)
	if rel == "." || filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("path %q is not beneath %s", rel, dir)
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer func() { _ = unix.Close(dfd) }()
	var fd int
	for {
		fd, err = unix.Openat2(dfd, rel, &unix.OpenHow{
			Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), //nolint:gosec // G115: open flags are positive
			Mode:    uint64(mode),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: filepath.Join(dir, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, rel)), nil
}

// openLog opens (creating it) the log file rel beneath dir for appending.
// O_NONBLOCK keeps a FIFO planted at rel from blocking the open; what is
// not a regular file is refused.
func openLog(dir, rel string) (*os.File, error) {
	if err := mkdirsBeneath(dir, rel); err != nil {
		return nil, err
	}
	f, err := openBeneath(dir, rel, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_NONBLOCK, 0o640)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		_ = f.Close()
		if err == nil {
			err = fmt.Errorf("log file %s is not a regular file", f.Name())
		}
		return nil, err
	}
	// A regular file ignores O_NONBLOCK; the flag is cleared all the same.
	rc, err := f.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) { err = unix.SetNonblock(int(fd), false) })
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("log file %s: %w", f.Name(), err)
	}
	return f, nil
}

// openFIFO opens the FIFO rel beneath dir for reading, without waiting
// for a writer; it fails for anything but a FIFO.
func openFIFO(dir, rel string) (*os.File, error) {
	f, err := openBeneath(dir, rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		_ = f.Close()
		if err == nil {
			err = fmt.Errorf("%s is not a FIFO", f.Name())
		}
		return nil, err
	}
	return f, nil
}

// mkdirsBeneath creates dir (the client's log directory, as the kubelet
// would have) and the directories of rel beneath it, one component at a
// time without following a symbolic link, as containerd creates the
// log file's directory.
func mkdirsBeneath(dir, rel string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	parent := filepath.Dir(filepath.Clean(rel))
	if parent == "." || filepath.IsAbs(parent) {
		return nil
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer func() { _ = unix.Close(fd) }()
	for _, comp := range strings.Split(parent, "/") {
		if comp == ".." {
			return fmt.Errorf("path %q is not beneath %s", rel, dir)
		}
		if err := unix.Mkdirat(fd, comp, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return &os.PathError{Op: "mkdirat", Path: filepath.Join(dir, comp), Err: err}
		}
		next, err := unix.Openat(fd, comp, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "openat", Path: filepath.Join(dir, comp), Err: err}
		}
		_ = unix.Close(fd)
		fd = next
	}
	return nil
}
