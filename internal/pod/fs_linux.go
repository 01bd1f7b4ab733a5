package pod

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames a directory, failing with an fs.ErrExist error
// rather than replacing an existing (empty) directory at newpath. On
// filesystems without RENAME_NOREPLACE it checks first, which is racy
// only against a process that breaks the locking protocol.
func renameNoReplace(oldpath, newpath string) error {
	for {
		err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
			if _, err := os.Lstat(newpath); err == nil {
				return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: unix.EEXIST}
			}
			return os.Rename(oldpath, newpath) //nolint:gosec // G703: a path in the pod directory
		}
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
}

// noFollow refuses a symlink as the last component of a created file.
const noFollow = unix.O_NOFOLLOW

// nonBlock keeps the open of a FIFO from blocking.
const nonBlock = unix.O_NONBLOCK
