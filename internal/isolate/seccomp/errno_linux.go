package seccomp

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
)

// errnoAliases are Linux names that share a number with the name
// unix.ErrnoName returns for it.
var errnoAliases = map[string]syscall.Errno{
	"EOPNOTSUPP":  unix.EOPNOTSUPP,
	"EWOULDBLOCK": unix.EWOULDBLOCK,
	"EDEADLOCK":   unix.EDEADLOCK,
}

var errnoByName = sync.OnceValue(func() map[string]syscall.Errno {
	m := make(map[string]syscall.Errno, 160)
	for e := syscall.Errno(1); e < 4096; e++ {
		if n := unix.ErrnoName(e); n != "" {
			m[n] = e
		}
	}
	for n, e := range errnoAliases {
		m[n] = e
	}
	return m
})

// errnoValue returns the number of a Linux errno name, such as "EPERM".
// Every POSIX.1-2001 and C99 code is a Linux one, as the spec requires.
func errnoValue(name string) (uint16, error) {
	e, ok := errnoByName()[name]
	if !ok {
		return 0, errdefs.InvalidArgument("seccomp errno %q is not a Linux errno name", name)
	}
	return uint16(e), nil //nolint:gosec // G115: Linux errnos are below 4096
}
