package lock

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// open opens path read-only for flock, refusing a symlink as the last
// component and a path of the wrong kind.
func open(path string, kind Kind) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW
	switch kind {
	case Dir:
		flags |= unix.O_DIRECTORY
	case RegularFile:
		flags |= unix.O_CREAT | unix.O_NONBLOCK // a FIFO must not block the open
	default:
		return nil, classifyOpen(path, kind, fmt.Errorf("unknown lock kind %d", int(kind)))
	}
	f, err := os.OpenFile(path, flags, 0o600) //nolint:gosec // G304: the lock file the caller names
	if err != nil {
		return nil, classifyOpen(path, kind, err)
	}
	if kind == RegularFile {
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return nil, classifyOpen(path, kind, err)
		}
		if !fi.Mode().IsRegular() {
			_ = f.Close()
			return nil, classifyOpen(path, kind, fmt.Errorf("is a %s, not a regular file", fi.Mode().Type()))
		}
	}
	return f, nil
}

// flock takes a lock of mode m on fd, waiting or not. A busy lock gives
// ErrLocked.
func flock(fd int, m mode, wait bool) error {
	how := unix.LOCK_EX
	if m == shared {
		how = unix.LOCK_SH
	}
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		err := unix.Flock(fd, how)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return ErrLocked
		}
		return os.NewSyscallError("flock", err)
	}
}

func unlock(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_UN)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return os.NewSyscallError("flock", err)
		}
		return nil
	}
}

// checkFd fails unless fd is an open descriptor.
func checkFd(fd int) error {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	return nil
}

func setCloseOnExec(fd int, on bool) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	if on {
		flags |= unix.FD_CLOEXEC
	} else {
		flags &^= unix.FD_CLOEXEC
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	return nil
}

func dupTo(oldfd, newfd int) error {
	for {
		err := unix.Dup3(oldfd, newfd, 0)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EBUSY) {
			continue
		}
		if err != nil {
			return os.NewSyscallError("dup3", err)
		}
		return nil
	}
}

func dupCloseOnExec(fd int) (int, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return -1, os.NewSyscallError("fcntl", err)
	}
	return nfd, nil
}

// probe opens path with a raw descriptor (no *os.File, no poller) and
// tries a shared lock on it.
func probe(path string, kind Kind) (bool, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK
	switch kind {
	case Dir:
		flags |= unix.O_DIRECTORY
	case RegularFile:
	default:
		return false, fmt.Errorf("unknown lock kind %d", int(kind))
	}
	var fd int
	for {
		var err error
		fd, err = unix.Open(path, flags, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, &os.PathError{Op: "open", Path: path, Err: err}
		}
		break
	}
	defer func() { _ = unix.Close(fd) }()
	if kind == RegularFile {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return false, &os.PathError{Op: "fstat", Path: path, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return false, fmt.Errorf("%s is not a regular file", path)
		}
	}
	err := flock(fd, shared, false)
	if errors.Is(err, ErrLocked) {
		return true, nil
	}
	return false, err
}
