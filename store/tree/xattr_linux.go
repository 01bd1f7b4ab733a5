package tree

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The IDs lsm_list_modules(2) gives IMA and EVM (include/uapi/linux/lsm.h).
const (
	lsmIDIMA = 111
	lsmIDEVM = 112
)

// closeAddsNoXattrs reports whether the kernel is known not to add an
// xattr to a file when its last writer closes it, so that the xattrs a
// worker sees on a file's descriptor before extraction closes it are the
// ones the tree keeps. IMA does add one then (security.ima, under an
// appraisal policy), and EVM follows it with security.evm; both are LSMs
// that lsm_list_modules(2) lists when active, from Linux 6.9 (the call
// itself came in 6.8, when IMA was not an LSM yet). On an older kernel,
// or when the call fails, the answer is no: the walk then reads the
// xattrs of every file from the tree, as verification does. A variable,
// so that the tests can take the answer away.
var closeAddsNoXattrs = sync.OnceValue(func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil || !kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 6, 9) {
		return false
	}
	ids, err := lsmListModules()
	if err != nil {
		return false
	}
	for _, id := range ids {
		if id == lsmIDIMA || id == lsmIDEVM {
			return false
		}
	}
	return true
})

// kernelAtLeast reports whether release, a kernel release as uname(2)
// gives it ("6.18.44-fc-v1300"), is major.minor or later. A release it
// cannot read is not.
func kernelAtLeast(release string, major, minor int) bool {
	ma, rest, ok := strings.Cut(release, ".")
	if !ok {
		return false
	}
	mi := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		mi = rest[:i]
	}
	a, err1 := strconv.Atoi(ma)
	b, err2 := strconv.Atoi(mi)
	if err1 != nil || err2 != nil {
		return false
	}
	return a > major || (a == major && b >= minor)
}

// lsmListModules returns the IDs of the active LSMs (lsm_list_modules(2)).
func lsmListModules() ([]uint64, error) {
	const room = 64 // LSMs; Linux has some twenty
	ids := make([]uint64, room)
	size := uint32(room * 8)
	n, _, errno := unix.Syscall(unix.SYS_LSM_LIST_MODULES, uintptr(unsafe.Pointer(&ids[0])), uintptr(unsafe.Pointer(&size)), 0) //nolint:gosec // G103: the syscall takes pointers
	if errno != 0 {
		return nil, errno
	}
	if n > uintptr(len(ids)) {
		return nil, unix.E2BIG
	}
	return ids[:n], nil
}

// fdHasNoXattrs reports whether the file open as fd has no xattrs but
// security.selinux (false: it has, or it could not be told).
func fdHasNoXattrs(fd int) bool {
	for {
		n, err := unix.Flistxattr(fd, nil)
		if errors.Is(err, unix.ENOTSUP) {
			return true
		}
		if err != nil {
			return false
		}
		if n == 0 {
			return true
		}
		buf := make([]byte, n)
		n, err = unix.Flistxattr(fd, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew between the two calls
		}
		if err != nil {
			return false
		}
		for name := range bytes.SplitSeq(buf[:n], []byte{0}) {
			if len(name) > 0 && string(name) != "security.selinux" {
				return false
			}
		}
		return true
	}
}
