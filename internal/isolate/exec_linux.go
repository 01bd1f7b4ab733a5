package isolate

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate/caps"
	"github.com/nosecone/nscn/internal/isolate/seccomp"
)

// Creds are the user and groups an app process runs as, resolved from
// the app's user and group (spec/aci.md) by the stage1.
type Creds struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups; none when empty
}

// ExecConfig describes the program Exec replaces the process with.
type ExecConfig struct {
	// Path is the program, already resolved; Args its argv, Args[0]
	// included; Env its environment.
	Path string
	Args []string
	Env  []string
	// Dir is the working directory, entered after the switch to Creds
	// (so with the app's permissions). Empty keeps the current one.
	Dir   string
	Creds Creds
	// ParentDeathSignal is armed again after the credential switch,
	// which clears it (prctl(2), PR_SET_PDEATHSIG); 0 arms none. Set it
	// to the signal the stage1 started this process with.
	ParentDeathSignal syscall.Signal
}

// Exec confines the calling process by p and replaces it with the
// program of cfg. It is the one place where run, enter and app exec apply
// a Policy in the process that becomes the app. It returns only on
// failure.
//
// Exec must be called from a process that exists to exec the app: a
// helper the stage1 starts by re-executing itself, running as root,
// single-purpose. Capabilities, credentials, no_new_privs and the seccomp
// filter are attributes of a thread, so Exec locks the calling goroutine
// to its OS thread, never unlocks it, changes that thread only and execs
// from it; the other threads of the Go runtime keep root and no filter
// until execve ends them. Once Exec has failed the thread is half
// confined: report the error and exit.
//
// The steps, in order (each needs what the previous ones leave):
//
//  1. Prepare: everything that allocates or may fail: the BPF program,
//     the capability sets masked to what the kernel knows; write
//     oom_score_adj (/proc/self/oom_score_adj; /proc must be mounted;
//     lowering it needs CAP_SYS_RESOURCE);
//  2. stop the garbage collector, so that no collection runs under the
//     filter;
//  3. set keep-caps, drop the bounding set (needs CAP_SETPCAP);
//  4. switch to cfg.Creds: setgroups, setresgid, setresuid; for a
//     non-root user this empties the effective set;
//  5. change to cfg.Dir, so with the user's own permissions;
//  6. set the effective, permitted and inheritable sets, then the
//     ambient set. When a filter is to be loaded without no_new_privs,
//     the thread keeps CAP_SYS_ADMIN in its effective and permitted sets
//     to load it; execve drops it, since it is in neither the bounding,
//     the inheritable nor the ambient set;
//  7. re-arm the parent-death signal and check the parent is alive;
//  8. set no_new_privs;
//  9. load the seccomp filter (not with TSYNC: this thread only);
//  10. execve, through syscall.Exec, which restores the RLIMIT_NOFILE
//     soft limit the Go runtime raised at start.
func Exec(p *Policy, cfg ExecConfig) error {
	runtime.LockOSThread() // never unlocked: the thread becomes the app
	pr, err := Prepare(p)
	if err != nil {
		return err
	}
	return pr.Exec(cfg)
}

// Prepared is a Policy made ready to apply to a thread: what can fail or
// allocate is done, and the process-wide part (oom_score_adj) applied.
type Prepared struct {
	p      *Policy
	filter *seccomp.Loadable
	sets   caps.Sets
	last   caps.Cap
	// withheld are the capabilities of the policy that the thread does
	// not hold, in a user namespace other than the initial one (Withheld).
	withheld caps.Set
}

// Withheld returns the capabilities the policy grants that the app does
// not get because the calling thread runs in a user namespace whose
// creator withheld them from it (systemd-nspawn --private-users drops
// CAP_NET_BIND_SERVICE, which a user namespace cannot use on a network
// namespace it does not own). In the initial user namespace it is
// always empty: a policy beyond what the thread holds is an error there,
// as before.
func (pr *Prepared) Withheld() caps.Set { return pr.withheld }

// Prepare does the first step of Exec: it assembles p's filter, computes
// the capability sets the thread will get and writes p's oom_score_adj,
// which is an attribute of the whole process (and of what it starts
// later). It needs /proc/self of the calling process.
func Prepare(p *Policy) (*Prepared, error) {
	if p == nil {
		p = &Policy{}
	}
	pr := &Prepared{p: p}
	if p.Seccomp != nil {
		prog, err := p.Seccomp.Assemble()
		if err != nil {
			return nil, err
		}
		if pr.filter, err = prog.Loadable(); err != nil {
			return nil, err
		}
	}
	last, err := caps.KernelLast()
	if err != nil {
		return nil, err
	}
	pr.last = last
	known := caps.All(last)
	if p.Caps != nil {
		s := *p.Caps
		pr.sets = caps.Sets{
			Bounding: s.Bounding & known, Effective: s.Effective & known, Permitted: s.Permitted & known,
			Inheritable: s.Inheritable & known, Ambient: s.Ambient & known,
		}
		if err := pr.sets.Validate(); err != nil {
			return nil, err
		}
	} else {
		// Keep what the thread has; the credential switch below clears
		// the effective set of a non-root user, which this restores
		// for the executor's own last steps.
		_, perm, inh, err := caps.ThreadSets()
		if err != nil {
			return nil, err
		}
		pr.sets = caps.Sets{Effective: perm, Permitted: perm, Inheritable: inh}
	}
	// In a user namespace of a container, the thread (root in it) holds
	// what the container's creator left it; the kernel refuses to raise
	// a capability outside the thread's permitted set (capset(2)), so
	// asking for one fails the whole start. A capability the thread
	// lacks cannot be the app's either way: it is left out, and said
	// (Withheld). Only ever less: the bounding set is dropped as the
	// policy says.
	if p.Caps != nil {
		if nested, err := inUserNamespace(); err != nil {
			return nil, err
		} else if nested {
			_, held, _, err := caps.ThreadSets()
			if err != nil {
				return nil, err
			}
			pr.withheld = pr.sets.Permitted &^ held
			pr.sets.Effective &= held
			pr.sets.Permitted &= held
			pr.sets.Inheritable &= held
			pr.sets.Ambient &= held
		}
	}
	if pr.filter != nil && !p.NoNewPrivs {
		pr.sets.Effective = pr.sets.Effective.Add(caps.SysAdmin)
		pr.sets.Permitted = pr.sets.Permitted.Add(caps.SysAdmin)
	}
	if p.OOMScoreAdj != nil {
		if err := writeOOMScoreAdj(*p.OOMScoreAdj); err != nil {
			return nil, err
		}
	}
	return pr, nil
}

// Exec does Exec's steps 2 to 10 on the calling thread, which must be
// locked to its goroutine for good. It returns only on failure.
func (pr *Prepared) Exec(cfg ExecConfig) error {
	if len(cfg.Args) == 0 || cfg.Path == "" {
		return errdefs.InvalidArgument("exec: no program")
	}
	ppid := unix.Getppid()
	debug.SetGCPercent(-1)
	if err := pr.confineThread(cfg, ppid); err != nil {
		return err
	}
	err := syscall.Exec(cfg.Path, cfg.Args, cfg.Env) //nolint:gosec // G204: running the app is this function's job; Path and Args come from the validated manifest
	return &os.PathError{Op: "exec", Path: cfg.Path, Err: err}
}

// StartSafe reports whether Start may apply p: a filter that could block
// a syscall of the Go runtime or of its fork and exec (StartSyscalls),
// or an allow-list, which blocks all that it does not name, would fail
// the start half-way or kill the starting process; such a policy needs
// a process of its own that execs (Exec).
func StartSafe(p *Policy) bool {
	if p == nil || p.Seccomp == nil {
		return true
	}
	if p.Seccomp.Mode != seccomp.Remove {
		return false
	}
	for _, name := range p.Seccomp.Syscalls {
		if slices.Contains(StartSyscalls(), name) {
			return false
		}
	}
	return true
}

// StartSyscalls lists the syscalls that a thread which Start confined
// may still make before and while it forks and execs the app: the Go
// runtime's own (memory, signals, scheduling, time, the netpoller) and
// those of syscall.StartProcess in the parent and in the child.
func StartSyscalls() []string {
	return []string{
		"brk", "mmap", "munmap", "mprotect", "madvise", "mincore",
		"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
		"futex", "sched_yield", "sched_getaffinity", "nanosleep", "clock_gettime", "clock_nanosleep", "getrandom",
		"getpid", "gettid", "getppid", "tgkill", "tkill", "uname",
		"epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd2",
		"clone", "clone3", "fork", "vfork", "execve", "execveat", "wait4", "waitid",
		"pidfd_open", "pidfd_send_signal",
		"pipe", "pipe2", "read", "write", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "ioctl", "openat",
		"fstat", "newfstatat", "statx", "lseek", "setitimer", "timer_create", "timer_settime", "timer_delete",
		"setsid", "setpgid", "chdir", "fchdir", "getrlimit", "setrlimit", "prlimit64",
		"exit", "exit_group",
	}
}

// Start does Exec's steps 3 to 9 on the calling thread and then, instead
// of replacing the process, starts the program of cfg from that thread
// with files as its descriptors 0, 1, 2... and returns its pid (the
// caller waits for it: syscall.Wait4): a child inherits the thread's
// credentials, capabilities, no_new_privs, filter, namespaces, root and
// working directory, not the process's. The calling goroutine must be
// locked to its thread and end without unlocking it, so that the Go
// runtime ends the confined thread with it; the process's other threads
// are untouched. The policy must be StartSafe. cfg.ParentDeathSignal is
// not supported (a parent-death signal follows the creating thread,
// which ends).
//
// It saves the start of a process (a Go runtime) that exists only to
// confine itself and exec, where the caller is already in place: the
// app's shim after entering the app's namespaces on this thread.
func (pr *Prepared) Start(cfg ExecConfig, files []uintptr) (int, error) {
	if len(cfg.Args) == 0 || cfg.Path == "" {
		return 0, errdefs.InvalidArgument("exec: no program")
	}
	if !StartSafe(pr.p) {
		return 0, errdefs.InvalidArgument("start %s: its seccomp filter needs a process of its own (isolate.Exec)", cfg.Path)
	}
	if cfg.ParentDeathSignal != 0 {
		return 0, errdefs.InvalidArgument("start %s: no parent-death signal from a thread that ends", cfg.Path)
	}
	if err := pr.confineThread(cfg, 0); err != nil {
		return 0, err
	}
	env := cfg.Env
	if env == nil {
		env = []string{} // not the caller's environment
	}
	// syscall.ForkExec, not os.StartProcess: the latter checks once per
	// process that pidfds work, by starting a child of its own.
	pid, err := syscall.ForkExec(cfg.Path, cfg.Args, &syscall.ProcAttr{Env: env, Files: files}) //nolint:gosec // G204: running the app is this function's job
	if err != nil {
		return 0, &os.PathError{Op: "start", Path: cfg.Path, Err: err}
	}
	return pid, nil
}

// confineThread is Exec's steps 3 to 9 on the calling thread; ppid, when
// not 0, is the parent the parent-death signal guards.
func (pr *Prepared) confineThread(cfg ExecConfig, ppid int) error {
	p, sets := pr.p, pr.sets

	// 3. Bounding set, while the thread still has CAP_SETPCAP.
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_KEEPCAPS", err)
	}
	if p.Caps != nil {
		if err := caps.DropBounding(sets.Bounding, pr.last); err != nil {
			return err
		}
	}

	// 4. Credentials, this thread only.
	if err := setThreadCreds(cfg.Creds); err != nil {
		return err
	}

	// 5. Working directory, before capabilities are back.
	if cfg.Dir != "" {
		if err := unix.Chdir(cfg.Dir); err != nil {
			return &os.PathError{Op: "chdir", Path: cfg.Dir, Err: err}
		}
	}

	// 6. Capability sets.
	if err := caps.SetThread(sets.Effective, sets.Permitted, sets.Inheritable); err != nil {
		return err
	}
	if p.Caps != nil {
		if err := caps.SetAmbient(sets.Ambient); err != nil {
			return err
		}
	}

	// 7. Parent-death signal.
	if cfg.ParentDeathSignal != 0 {
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(cfg.ParentDeathSignal), 0, 0, 0); err != nil {
			return os.NewSyscallError("prctl PR_SET_PDEATHSIG", err)
		}
		if unix.Getppid() != ppid {
			return errdefs.Unavailable("exec: the parent process exited")
		}
	}

	// 8. no_new_privs.
	if p.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return os.NewSyscallError("prctl PR_SET_NO_NEW_PRIVS", err)
		}
	}

	// 9. Seccomp, the last thing before execve.
	if pr.filter != nil {
		if err := seccomp.Install(pr.filter); err != nil {
			return err
		}
	}
	return nil
}

// inUserNamespace reports whether the calling process runs in a user
// namespace other than the initial one, whose uid_map is the identity
// of every ID (user_namespaces(7)).
func inUserNamespace() (bool, error) {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false, fmt.Errorf("read the user namespace's ID map: %w", err)
	}
	return !isIdentityMap(string(b)), nil
}

// isIdentityMap reports whether a uid_map maps every ID onto itself.
func isIdentityMap(m string) bool {
	f := strings.Fields(m)
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}

func writeOOMScoreAdj(n int) error {
	const p = "/proc/self/oom_score_adj"
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("set oom score adjustment: %w", err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.WriteString(strconv.Itoa(n)); err != nil {
		return fmt.Errorf("set oom score adjustment %d: %w", n, err)
	}
	return nil
}

// setThreadCreds switches the calling thread, and only it, to c with raw
// syscalls. (syscall.Setresuid and friends change every thread of the
// process and are unavailable with cgo.)
func setThreadCreds(c Creds) error {
	var groups unsafe.Pointer
	if len(c.Groups) > 0 {
		groups = unsafe.Pointer(&c.Groups[0]) //nolint:gosec // G103: the syscall takes a pointer
	}
	if _, _, e := unix.RawSyscall(sysSetgroups, uintptr(len(c.Groups)), uintptr(groups), 0); e != 0 {
		return os.NewSyscallError("setgroups", e)
	}
	if _, _, e := unix.RawSyscall(sysSetresgid, uintptr(c.GID), uintptr(c.GID), uintptr(c.GID)); e != 0 {
		return os.NewSyscallError("setresgid", e)
	}
	if _, _, e := unix.RawSyscall(sysSetresuid, uintptr(c.UID), uintptr(c.UID), uintptr(c.UID)); e != 0 {
		return os.NewSyscallError("setresuid", e)
	}
	runtime.KeepAlive(c.Groups)
	return nil
}
