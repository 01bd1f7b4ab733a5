// Package seccomp turns the appc seccomp isolators (spec/ace.md,
// os/linux/seccomp-remove-set and os/linux/seccomp-retain-set) into a
// Filter, a list of syscall names with an action, and assembles a Filter
// into a classic BPF program for seccomp(2) with
// github.com/elastic/go-seccomp-bpf, which is pure Go: stage1 binaries are
// static and cannot link libseccomp.
//
// It runs in stage1. Building and assembling filters is pure and needs no
// privilege; Install (Linux only) loads a program on the calling thread,
// which needs no_new_privs or CAP_SYS_ADMIN.
//
// The filter is built for the native architecture only. A syscall made
// through another ABI (i386 int 0x80 on x86_64, AArch32 on arm64) kills
// the process, so a remove-set cannot be bypassed by changing ABI, and x32
// syscalls on x86_64 fail with ENOSYS. 32-bit binaries therefore cannot
// run under a filter; they need --disable-seccomp or a retain-set of
// @appc.io/all.
package seccomp

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Mode says what the syscalls of a Filter are.
type Mode string

// The modes of the two isolators.
const (
	// Remove blocks the listed syscalls and allows the others.
	Remove Mode = "remove"
	// Retain allows the listed syscalls and blocks the others.
	Retain Mode = "retain"
)

// Wildcards and groups that may appear in an isolator's set. The
// @appc.io/ ones are the spec's; the @nscn/ ones are this runtime's.
const (
	// All is every syscall; in a retain-set it turns filtering off.
	All = "@appc.io/all"
	// Empty is no syscall; in a remove-set it masks the other entries and
	// selects the default filter.
	Empty = "@appc.io/empty"
	// GroupDefaultBlacklist is DefaultBlacklist, for remove-sets that want
	// it plus syscalls of their own.
	GroupDefaultBlacklist = "@nscn/default-blacklist"
	// GroupLifecycle is Lifecycle. Every retain-set gets it anyway.
	GroupLifecycle = "@nscn/lifecycle"
)

// DefaultErrno is what a syscall blocked by the default filter returns.
// Apps that probe for a feature (keyrings, io_uring, perf) handle EPERM
// and fall back; a SIGSYS would kill them instead.
const DefaultErrno = "EPERM"

// DefaultBlacklist lists the syscalls blocked when an app has no seccomp
// isolator. Each is either host-wide (no namespace confines it), a known
// way out of the app's filesystem view, or kernel attack surface that an
// app without privileges can reach but almost never needs. Syscalls that a
// capability outside the default set already guards, and that an app may
// legitimately need when its image retains that capability (mount,
// umount2, pivot_root, ptrace, clock_settime, quotactl, ...), are left to
// the capability. Documentation/isolators.md gives the reasons in full.
func DefaultBlacklist() []string {
	return []string{
		// The host machine: the kernel image, its modules, power, swap
		// and process accounting are not namespaced.
		"kexec_load", "kexec_file_load",
		"init_module", "finit_module", "delete_module",
		"reboot",
		"swapon", "swapoff",
		"acct",
		// A file handle names an inode on the whole filesystem and
		// bypasses the chroot and mount namespace.
		"open_by_handle_at",
		// Reachable without privilege, large, and a frequent source of
		// kernel exploits; apps fall back when they fail.
		"keyctl", "add_key", "request_key", // keyrings are not namespaced
		"bpf",
		"perf_event_open",
		"userfaultfd", // used to widen kernel race windows
		"io_uring_setup", "io_uring_enter", "io_uring_register",
		// A process's own segment descriptors: only 16-bit and emulated
		// code needs them, and the LDT code has had exploitable bugs.
		// systemd-nspawn's filter blocks it too, but a mutable pod's
		// container has none (stage1/entrypoint's nspawnSeccompOff).
		"modify_ldt",
		// The host's kernel log (readable when dmesg_restrict is 0).
		"syslog",
	}
}

// Lifecycle lists the syscalls every retain-set allows, so that the app
// can be started and can end (spec/ace.md: the implementation default
// whitelist is the minimum the app life-cycle needs). The filter is
// loaded by the executor's own thread right before execve, so that
// thread must still be able to restore the RLIMIT_NOFILE soft limit that
// the Go runtime raised (prlimit64), to exec, to return from a signal
// handler (Go's preemption signal), and to park on a futex or yield if
// the Go scheduler deschedules it in between; the app must be able to
// exit.
func Lifecycle() []string {
	return []string{"execve", "exit", "exit_group", "futex", "prlimit64", "rt_sigreturn", "sched_yield"}
}

var groups = map[string]func() []string{
	GroupDefaultBlacklist: DefaultBlacklist,
	GroupLifecycle:        Lifecycle,
}

// Filter is a seccomp filter as data: which syscalls, what they are, and
// what happens to a blocked one. It encodes to JSON, to cross from the
// stage1 to the process that installs it.
type Filter struct {
	Mode Mode `json:"mode"`
	// Errno is the all-uppercase errno name a blocked syscall returns,
	// such as "EPERM". Empty means the process is killed, with SIGSYS.
	Errno string `json:"errno,omitempty"`
	// Syscalls is sorted and without duplicates. Names that the running
	// architecture lacks are skipped when the filter is assembled.
	Syscalls []string `json:"syscalls"`
}

// Default returns the filter of an app without seccomp isolator.
func Default() *Filter {
	return &Filter{Mode: Remove, Errno: DefaultErrno, Syscalls: sortUnique(DefaultBlacklist())}
}

// FromRemoveSet returns the filter of an os/linux/seccomp-remove-set
// isolator. An explicit set is not augmented: the app gets exactly what
// it lists (it may list GroupDefaultBlacklist). A set with Empty is the
// default blacklist, with the isolator's errno.
func FromRemoveSet(set []string, errno string) (*Filter, error) {
	if err := checkErrno(errno); err != nil {
		return nil, err
	}
	if slices.Contains(set, Empty) {
		return &Filter{Mode: Remove, Errno: errno, Syscalls: sortUnique(DefaultBlacklist())}, nil
	}
	names, err := expand(set, All)
	if err != nil {
		return nil, err
	}
	return &Filter{Mode: Remove, Errno: errno, Syscalls: names}, nil
}

// FromRetainSet returns the filter of an os/linux/seccomp-retain-set
// isolator: the set plus Lifecycle. A set with All means no filter: it
// returns nil.
func FromRetainSet(set []string, errno string) (*Filter, error) {
	if err := checkErrno(errno); err != nil {
		return nil, err
	}
	if slices.Contains(set, All) {
		return nil, nil
	}
	names, err := expand(set, Empty)
	if err != nil {
		return nil, err
	}
	return &Filter{Mode: Retain, Errno: errno, Syscalls: sortUnique(append(names, Lifecycle()...))}, nil
}

// expand replaces groups by their syscalls and checks the other names;
// refused is the wildcard that makes no sense in this kind of set.
func expand(set []string, refused string) ([]string, error) {
	if len(set) == 0 {
		return nil, errdefs.InvalidArgument("seccomp set is empty")
	}
	var out []string
	for _, n := range set {
		switch {
		case n == refused:
			return nil, errdefs.InvalidArgument("seccomp set: %s cannot be used in this isolator", n)
		case strings.HasPrefix(n, "@"):
			g, ok := groups[n]
			if !ok {
				return nil, errdefs.InvalidArgument("seccomp set: unknown group %q (known: %s, %s, %s, %s)", n, All, Empty, GroupDefaultBlacklist, GroupLifecycle)
			}
			out = append(out, g()...)
		case !validName(n):
			return nil, errdefs.InvalidArgument("seccomp set: %q is not a syscall name", n)
		default:
			out = append(out, n)
		}
	}
	return sortUnique(out), nil
}

// validName accepts what a kernel syscall table can hold: lowercase
// letters, digits and underscores.
func validName(n string) bool {
	if n == "" {
		return false
	}
	for _, r := range n {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

func sortUnique(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// checkErrno checks the errno name: empty, or a name the running kernel
// knows (errnoValue).
func checkErrno(name string) error {
	if name == "" {
		return nil
	}
	if _, err := errnoValue(name); err != nil {
		return err
	}
	return nil
}

// Rules renders the filter as text: one header line per property, then
// one syscall per line. It is what the golden files hold and what a debug
// log shows; it does not depend on the architecture.
func (f *Filter) Rules() string {
	var b strings.Builder
	blocked := "kill the process (SIGSYS)"
	if f.Errno != "" {
		blocked = "fail with " + f.Errno
	}
	switch f.Mode {
	case Remove:
		fmt.Fprintf(&b, "mode: remove\nlisted syscalls: %s\nother syscalls: allow\n", blocked)
	case Retain:
		fmt.Fprintf(&b, "mode: retain\nlisted syscalls: allow\nother syscalls: %s\n", blocked)
	default:
		fmt.Fprintf(&b, "mode: %q (invalid)\n", f.Mode)
	}
	fmt.Fprintf(&b, "syscalls (%d):\n", len(f.Syscalls))
	for _, s := range f.Syscalls {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	return b.String()
}
