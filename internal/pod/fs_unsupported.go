//go:build !linux

package pod

import (
	"os"
	"syscall"
)

func renameNoReplace(oldpath, newpath string) error {
	if _, err := os.Lstat(newpath); err == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EEXIST}
	}
	return os.Rename(oldpath, newpath)
}

const noFollow = syscall.O_NOFOLLOW

const nonBlock = syscall.O_NONBLOCK
