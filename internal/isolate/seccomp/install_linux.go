package seccomp

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Loadable is an assembled program in the kernel's form, prepared ahead
// so that Install allocates nothing: it runs right before execve, when
// a garbage collection could make syscalls the filter blocks.
type Loadable struct {
	filter []unix.SockFilter
	prog   unix.SockFprog
}

// Loadable converts p for Install.
func (p *Program) Loadable() (*Loadable, error) {
	raw, err := bpf.Assemble(p.Instructions)
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	if len(raw) == 0 || len(raw) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp filter has %d instructions, the kernel takes 1 to %d", len(raw), unix.BPF_MAXINSNS)
	}
	l := &Loadable{filter: make([]unix.SockFilter, len(raw))}
	for i, r := range raw {
		l.filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	l.prog = unix.SockFprog{Len: uint16(len(l.filter)), Filter: &l.filter[0]} //nolint:gosec // G115: at most BPF_MAXINSNS, checked above
	return l, nil
}

// Install loads l on the calling thread with seccomp(2), without
// SECCOMP_FILTER_FLAG_TSYNC: the other threads of a Go process stay
// unfiltered, and the thread that then calls execve hands the filter to
// the new program. The thread needs no_new_privs or CAP_SYS_ADMIN in its
// effective set.
func Install(l *Loadable) error {
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&l.prog))) //nolint:gosec // G103: the syscall takes a pointer
	if e != 0 {
		return os.NewSyscallError("seccomp SECCOMP_SET_MODE_FILTER", e)
	}
	return nil
}
