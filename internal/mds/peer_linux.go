package mds

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/nosecone/nscn/internal/errdefs"
)

// peerUID returns the effective uid of the process at the other end of the
// Unix socket connection c, as the kernel recorded it at connect time
// (SO_PEERCRED).
func peerUID(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, errdefs.InvalidArgument("peer credentials of a %s connection", c.LocalAddr().Network())
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("peer credentials: %w", os.NewSyscallError("getsockopt SO_PEERCRED", serr))
	}
	return cred.Uid, nil
}
