// Package caps names the Linux capabilities and holds sets of them as
// bitmasks, for the appc isolators os/linux/capabilities-retain-set and
// os/linux/capabilities-remove-set (spec/ace.md, "Linux Isolators"). On
// Linux it also changes the capability sets of the calling thread
// (caps_linux.go); the rest is pure and portable.
//
// It runs in stage1, and in stage0 for FromIsolators alone: stage0 asks
// the operator's consent for what an image's isolators grant beyond
// Default before it creates a pod (Documentation/isolators.md). Computing
// sets needs no privilege; changing the bounding set needs CAP_SETPCAP,
// and raising a capability needs it in the permitted set. See
// capabilities(7) for the rules.
package caps

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Cap is a capability number, as in linux/capability.h.
type Cap uint

// The capabilities this package names, by kernel number. The table is the
// kernel ABI (include/uapi/linux/capability.h); a capability added by a
// later kernel is unknown here and refused by Parse.
var names = [...]string{
	0:  "CAP_CHOWN",
	1:  "CAP_DAC_OVERRIDE",
	2:  "CAP_DAC_READ_SEARCH",
	3:  "CAP_FOWNER",
	4:  "CAP_FSETID",
	5:  "CAP_KILL",
	6:  "CAP_SETGID",
	7:  "CAP_SETUID",
	8:  "CAP_SETPCAP",
	9:  "CAP_LINUX_IMMUTABLE",
	10: "CAP_NET_BIND_SERVICE",
	11: "CAP_NET_BROADCAST",
	12: "CAP_NET_ADMIN",
	13: "CAP_NET_RAW",
	14: "CAP_IPC_LOCK",
	15: "CAP_IPC_OWNER",
	16: "CAP_SYS_MODULE",
	17: "CAP_SYS_RAWIO",
	18: "CAP_SYS_CHROOT",
	19: "CAP_SYS_PTRACE",
	20: "CAP_SYS_PACCT",
	21: "CAP_SYS_ADMIN",
	22: "CAP_SYS_BOOT",
	23: "CAP_SYS_NICE",
	24: "CAP_SYS_RESOURCE",
	25: "CAP_SYS_TIME",
	26: "CAP_SYS_TTY_CONFIG",
	27: "CAP_MKNOD",
	28: "CAP_LEASE",
	29: "CAP_AUDIT_WRITE",
	30: "CAP_AUDIT_CONTROL",
	31: "CAP_SETFCAP",
	32: "CAP_MAC_OVERRIDE",
	33: "CAP_MAC_ADMIN",
	34: "CAP_SYSLOG",
	35: "CAP_WAKE_ALARM",
	36: "CAP_BLOCK_SUSPEND",
	37: "CAP_AUDIT_READ",
	38: "CAP_PERFMON",
	39: "CAP_BPF",
	40: "CAP_CHECKPOINT_RESTORE",
}

// Last is the highest capability this package knows. The running kernel
// may know fewer (see KernelLast on Linux).
const Last = Cap(len(names) - 1)

// Capabilities used by name in this module.
const (
	Chown          Cap = 0
	DACOverride    Cap = 1
	FOwner         Cap = 3
	FSetID         Cap = 4
	Kill           Cap = 5
	SetGID         Cap = 6
	SetUID         Cap = 7
	SetPCap        Cap = 8
	NetBindService Cap = 10
	NetRaw         Cap = 13
	SysChroot      Cap = 18
	SysAdmin       Cap = 21
	MkNod          Cap = 27
	AuditWrite     Cap = 29
	SetFCap        Cap = 31
)

// String returns the kernel name of c, such as "CAP_CHOWN".
func (c Cap) String() string {
	if c <= Last {
		return names[c]
	}
	return fmt.Sprintf("CAP_%d", uint(c))
}

// Parse returns the capability named name. Names are case-sensitive and
// carry the CAP_ prefix, as the appc spec writes them ("CAP_NET_ADMIN").
// An unknown name is an errdefs.ErrInvalidArgument.
func Parse(name string) (Cap, error) {
	for i, n := range names {
		if n == name {
			return Cap(i), nil
		}
	}
	return 0, errdefs.InvalidArgument("unknown capability %q", name)
}

// Set is a set of capabilities: bit n stands for capability n. The zero
// value is the empty set.
type Set uint64

// Of returns the set of the given capabilities.
func Of(cs ...Cap) Set {
	var s Set
	for _, c := range cs {
		s = s.Add(c)
	}
	return s
}

// All returns every capability up to and including last.
func All(last Cap) Set {
	if last >= 63 {
		return ^Set(0)
	}
	return Set(1)<<(last+1) - 1
}

// Has reports whether c is in s.
func (s Set) Has(c Cap) bool { return c < 64 && s&(1<<c) != 0 }

// Add returns s with c.
func (s Set) Add(c Cap) Set { return s | 1<<c }

// Remove returns s without c.
func (s Set) Remove(c Cap) Set { return s &^ (1 << c) }

// Len returns the number of capabilities in s.
func (s Set) Len() int { return bits.OnesCount64(uint64(s)) }

// Caps lists the capabilities of s in kernel order.
func (s Set) Caps() []Cap {
	var out []Cap
	for c := Cap(0); c < 64; c++ {
		if s.Has(c) {
			out = append(out, c)
		}
	}
	return out
}

// Names lists the names of the capabilities of s in kernel order. It is
// never nil, so that an empty set encodes as [].
func (s Set) Names() []string {
	out := []string{}
	for _, c := range s.Caps() {
		out = append(out, c.String())
	}
	return out
}

// String returns the names of s separated by commas, or "none".
func (s Set) String() string {
	if s == 0 {
		return "none"
	}
	return strings.Join(s.Names(), ",")
}

// MarshalJSON encodes s as a list of capability names.
func (s Set) MarshalJSON() ([]byte, error) { return json.Marshal(s.Names()) }

// UnmarshalJSON decodes a list of capability names.
func (s *Set) UnmarshalJSON(b []byte) error {
	var ns []string
	if err := json.Unmarshal(b, &ns); err != nil {
		return err
	}
	set, err := ParseSet(ns)
	if err != nil {
		return err
	}
	*s = set
	return nil
}

// ParseSet returns the set of the named capabilities (see Parse).
func ParseSet(ns []string) (Set, error) {
	var s Set
	for _, n := range ns {
		c, err := Parse(n)
		if err != nil {
			return 0, err
		}
		s = s.Add(c)
	}
	return s, nil
}

// Default is the set an app gets when its image has no capability
// isolator: the 14 capabilities that spec/ace.md lists under
// os/linux/capabilities-remove-set. Documentation/isolators.md explains
// what each is for and what the set leaves out.
var Default = Of(
	AuditWrite, Chown, DACOverride, FSetID, FOwner, Kill, MkNod,
	NetRaw, NetBindService, SetUID, SetGID, SetPCap, SetFCap, SysChroot,
)

// Sets are the five capability sets of a process (capabilities(7)) as the
// app should start with them.
type Sets struct {
	// Bounding limits what the app and its children can ever gain.
	Bounding Set `json:"bounding"`
	// Effective and Permitted are those of the thread that execs the app.
	// For a root app the kernel recomputes both from Bounding at execve;
	// for another user it recomputes them from Ambient.
	Effective Set `json:"effective"`
	Permitted Set `json:"permitted"`
	// Inheritable is kept across execve; with file inheritable
	// capabilities it grants capabilities to a program.
	Inheritable Set `json:"inheritable"`
	// Ambient is what an app that is not root gets at execve, with no
	// file capability involved. Each must be in Permitted and Inheritable.
	Ambient Set `json:"ambient"`
}

// Validate checks the invariants the kernel enforces, so that a bad set is
// refused before anything is changed.
func (s Sets) Validate() error {
	switch {
	case s.Effective&^s.Permitted != 0:
		return errdefs.InvalidArgument("effective capabilities %s are not permitted", s.Effective&^s.Permitted)
	case s.Permitted&^s.Bounding != 0:
		return errdefs.InvalidArgument("permitted capabilities %s are not in the bounding set", s.Permitted&^s.Bounding)
	case s.Inheritable&^s.Bounding != 0:
		return errdefs.InvalidArgument("inheritable capabilities %s are not in the bounding set", s.Inheritable&^s.Bounding)
	case s.Ambient&^(s.Permitted&s.Inheritable) != 0:
		return errdefs.InvalidArgument("ambient capabilities %s are not both permitted and inheritable", s.Ambient&^(s.Permitted&s.Inheritable))
	}
	return nil
}
