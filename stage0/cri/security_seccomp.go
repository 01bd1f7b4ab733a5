package cri

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate/seccomp"
)

// maxSeccompProfile bounds a Localhost profile's size: Docker's default
// profile, the largest in common use, is about 20 KiB.
const maxSeccompProfile = 1 << 20

// ociSeccomp is the part of an OCI runtime-spec seccomp profile
// (config-linux.md, "Seccomp") that nscn reads; the same JSON is what
// Kubernetes' Localhost profiles hold. Fields nscn cannot honour are
// kept so that their presence is refused, not ignored.
type ociSeccomp struct {
	DefaultAction   string            `json:"defaultAction"`
	DefaultErrnoRet *uint             `json:"defaultErrnoRet,omitempty"`
	Architectures   []string          `json:"architectures,omitempty"`
	Flags           []string          `json:"flags,omitempty"`
	ListenerPath    string            `json:"listenerPath,omitempty"`
	Syscalls        []ociSeccompRule  `json:"syscalls,omitempty"`
	ArchMap         []json.RawMessage `json:"archMap,omitempty"` // Docker's profiles: per-architecture names, ignored
}

type ociSeccompRule struct {
	Names    []string          `json:"names"`
	Name     string            `json:"name,omitempty"` // Docker's older profiles
	Action   string            `json:"action"`
	ErrnoRet *uint             `json:"errnoRet,omitempty"`
	Args     []json.RawMessage `json:"args,omitempty"`
}

// seccompFromOCI turns an OCI seccomp profile into the appc seccomp
// isolator that does the same: a profile that allows by default and
// lists syscalls that fail (or kill) is a remove-set, one that fails (or
// kills) by default and lists the allowed syscalls a retain-set. What an
// appc isolator cannot say is refused (errdefs.ErrInvalidArgument):
// argument conditions, several errnos or actions for the blocked
// syscalls, actions other than allow, errno and kill (trace, log,
// notify), and filter flags. Architectures are not checked: nscn's filter
// is for the native architecture and kills any other ABI's syscalls.
func seccompFromOCI(b []byte) (*types.Isolator, error) {
	if len(b) > maxSeccompProfile {
		return nil, errdefs.InvalidArgument("seccomp profile is larger than %d bytes", maxSeccompProfile)
	}
	var p ociSeccomp
	d := json.NewDecoder(strings.NewReader(string(b)))
	if err := d.Decode(&p); err != nil {
		return nil, errdefs.InvalidArgument("seccomp profile: %v", err)
	}
	if d.More() {
		return nil, errdefs.InvalidArgument("seccomp profile: data after the JSON object")
	}
	if len(p.Flags) > 0 {
		return nil, errdefs.InvalidArgument("seccomp profile: flags %s are not supported", strings.Join(p.Flags, ","))
	}
	if p.ListenerPath != "" {
		return nil, errdefs.InvalidArgument("seccomp profile: a listener (SCMP_ACT_NOTIFY) is not supported")
	}
	def, err := ociAction(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: defaultAction: %w", err)
	}
	var (
		listed  []string
		blocked *ociOutcome // what the listed syscalls do, when the default allows
	)
	for i, r := range p.Syscalls {
		if len(r.Args) > 0 {
			return nil, errdefs.InvalidArgument("seccomp profile: syscalls[%d]: argument conditions are not supported", i)
		}
		names := r.Names
		if r.Name != "" {
			names = append(slices.Clone(names), r.Name)
		}
		if len(names) == 0 {
			return nil, errdefs.InvalidArgument("seccomp profile: syscalls[%d] names no syscall", i)
		}
		for _, n := range names {
			if !validSyscallName(n) {
				return nil, errdefs.InvalidArgument("seccomp profile: syscalls[%d]: %q is not a syscall name", i, n)
			}
		}
		o, err := ociAction(r.Action, r.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile: syscalls[%d]: %w", i, err)
		}
		if o == def {
			continue // the default does it already
		}
		switch {
		case def.allow:
			// Remove-set: every listed syscall must block the same way.
			if blocked != nil && *blocked != o {
				return nil, errdefs.InvalidArgument("seccomp profile: syscalls[%d]: blocked syscalls %s, where earlier ones %s: nscn takes one action for all", i, o, *blocked)
			}
			blocked = &o
		case !o.allow:
			return nil, errdefs.InvalidArgument("seccomp profile: syscalls[%d]: %s where the default is %s: nscn takes one action for all blocked syscalls", i, o, def)
		}
		listed = append(listed, names...)
	}
	if def.allow {
		if len(listed) == 0 {
			// Everything allowed: no filter.
			s, err := types.NewLinuxSeccompRetainSet("", seccomp.All)
			if err != nil {
				return nil, errdefs.With(errdefs.ErrInvalidArgument, err)
			}
			return s.AsIsolator()
		}
		s, err := types.NewLinuxSeccompRemoveSet(blocked.errno, listed...)
		if err != nil {
			return nil, errdefs.InvalidArgument("seccomp profile: %v", err)
		}
		return s.AsIsolator()
	}
	if len(listed) == 0 {
		return nil, errdefs.InvalidArgument("seccomp profile allows no syscall: nothing could run")
	}
	s, err := types.NewLinuxSeccompRetainSet(def.errno, listed...)
	if err != nil {
		return nil, errdefs.InvalidArgument("seccomp profile: %v", err)
	}
	return s.AsIsolator()
}

// ociOutcome is what an OCI action does to a syscall, in appc's terms.
type ociOutcome struct {
	allow bool
	errno string // when blocked: the errno name, "" for kill
}

func (o ociOutcome) String() string {
	switch {
	case o.allow:
		return "allow"
	case o.errno == "":
		return "kill"
	}
	return "fail with " + o.errno
}

// ociAction maps an OCI seccomp action (and its errno) onto an outcome.
// SCMP_ACT_ERRNO without errnoRet is EPERM, as in runc.
func ociAction(action string, errnoRet *uint) (ociOutcome, error) {
	switch action {
	case "SCMP_ACT_ALLOW":
		return ociOutcome{allow: true}, nil
	case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS":
		return ociOutcome{}, nil
	case "SCMP_ACT_ERRNO":
		if errnoRet == nil {
			return ociOutcome{errno: "EPERM"}, nil
		}
		if *errnoRet == 0 || *errnoRet > 4095 {
			return ociOutcome{}, errdefs.InvalidArgument("errnoRet %d is not an errno", *errnoRet)
		}
		name := unix.ErrnoName(syscall.Errno(*errnoRet))
		if name == "" {
			return ociOutcome{}, errdefs.InvalidArgument("errnoRet %d is not an errno this system names", *errnoRet)
		}
		return ociOutcome{errno: name}, nil
	case "":
		return ociOutcome{}, errdefs.InvalidArgument("no action")
	}
	return ociOutcome{}, errdefs.InvalidArgument("action %q is not supported (nscn takes SCMP_ACT_ALLOW, SCMP_ACT_ERRNO and SCMP_ACT_KILL*)", action)
}

// validSyscallName accepts what a kernel syscall table can hold.
func validSyscallName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, r := range n {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}
