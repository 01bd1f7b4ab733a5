package seccomp

import (
	"fmt"
	"runtime"

	elastic "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Offsets in struct seccomp_data (linux/seccomp.h).
const offsetArch = 4

// Program is a Filter assembled for the native architecture.
type Program struct {
	// Arch is the architecture's kernel name, such as "x86_64".
	Arch string
	// Instructions is the BPF program, ready for bpf.Assemble.
	Instructions []bpf.Instruction
	// Skipped lists the filter's syscalls this architecture does not
	// have (an image may name "open", which arm64 lacks). They cannot be
	// made, so there is nothing to block or allow.
	Skipped []string
}

// Assemble builds the BPF program of f for the architecture this binary
// was built for. go-seccomp-bpf writes the body (syscall-number checks,
// x32 refused with ENOSYS on x86_64); Assemble puts in front a check that
// kills the process when a syscall comes through another ABI, because the
// body alone lets such syscalls take the default action, which for a
// remove-set is "allow".
func (f *Filter) Assemble() (*Program, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, errdefs.Newf(errdefs.ErrNotImplemented, "seccomp filter for %s: %w", runtime.GOARCH, err)
	}
	p := &Program{Arch: info.Name}
	var known []string
	for _, n := range f.Syscalls {
		if _, ok := info.SyscallNames[n]; ok {
			known = append(known, n)
		} else {
			p.Skipped = append(p.Skipped, n)
		}
	}
	deny := elastic.ActionKillProcess
	if f.Errno != "" {
		e, err := errnoValue(f.Errno)
		if err != nil {
			return nil, err
		}
		deny = elastic.ActionErrno | elastic.Action(e)
	}

	var pol elastic.Policy
	// placeholder marks the default return to rewrite, see below.
	var placeholder uint32
	switch f.Mode {
	case Remove:
		pol = elastic.Policy{
			DefaultAction: elastic.ActionAllow,
			Syscalls:      []elastic.SyscallGroup{{Names: known, Action: deny}},
		}
	case Retain:
		// The library accepts only a bare action as the default, not
		// one carrying an errno. Use "errno" (which it assembles as
		// EPERM) and rewrite that return: the only other return of a
		// retain program is "allow", and the x32 check returns ENOSYS.
		def := deny
		if f.Errno != "" {
			def = elastic.ActionErrno
			placeholder = uint32(elastic.ActionErrno) | 1 // EPERM
		}
		pol = elastic.Policy{
			DefaultAction: def,
			Syscalls:      []elastic.SyscallGroup{{Names: known, Action: elastic.ActionAllow}},
		}
	default:
		return nil, errdefs.InvalidArgument("seccomp filter mode %q", f.Mode)
	}
	body, err := pol.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	if placeholder != 0 {
		for i, ins := range body {
			if r, ok := ins.(bpf.RetConstant); ok && r.Val == placeholder {
				body[i] = bpf.RetConstant{Val: uint32(deny)}
			}
		}
	}
	p.Instructions = append([]bpf.Instruction{
		bpf.LoadAbsolute{Off: offsetArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(elastic.ActionKillProcess)},
	}, body...)
	return p, nil
}
