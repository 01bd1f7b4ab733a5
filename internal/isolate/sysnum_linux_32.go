//go:build linux && (386 || arm)

package isolate

import "golang.org/x/sys/unix"

// Credential syscalls taking 32-bit ids; the unsuffixed ones take 16-bit
// ids on these architectures.
const (
	sysSetgroups = unix.SYS_SETGROUPS32
	sysSetresgid = unix.SYS_SETRESGID32
	sysSetresuid = unix.SYS_SETRESUID32
)
