package isolate

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
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
// a Policy. It returns only on failure.
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
//  1. prepare everything that allocates or may fail: the BPF program,
//     the capability sets masked to what the kernel knows; stop the
//     garbage collector, so that no collection runs under the filter;
//  2. write oom_score_adj (/proc/self/oom_score_adj; /proc must be
//     mounted; lowering it needs CAP_SYS_RESOURCE);
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
	if p == nil {
		p = &Policy{}
	}
	if len(cfg.Args) == 0 || cfg.Path == "" {
		return errdefs.InvalidArgument("exec: no program")
	}
	runtime.LockOSThread() // never unlocked: the thread becomes the app

	// 1. Prepare.
	var filter *seccomp.Loadable
	if p.Seccomp != nil {
		prog, err := p.Seccomp.Assemble()
		if err != nil {
			return err
		}
		if filter, err = prog.Loadable(); err != nil {
			return err
		}
	}
	last, err := caps.KernelLast()
	if err != nil {
		return err
	}
	known := caps.All(last)
	var sets caps.Sets
	if p.Caps != nil {
		s := *p.Caps
		sets = caps.Sets{
			Bounding: s.Bounding & known, Effective: s.Effective & known, Permitted: s.Permitted & known,
			Inheritable: s.Inheritable & known, Ambient: s.Ambient & known,
		}
		if err := sets.Validate(); err != nil {
			return err
		}
	} else {
		// Keep what the thread has; the credential switch below clears
		// the effective set of a non-root user, which this restores
		// for the executor's own last steps.
		_, perm, inh, err := caps.ThreadSets()
		if err != nil {
			return err
		}
		sets = caps.Sets{Effective: perm, Permitted: perm, Inheritable: inh}
	}
	if filter != nil && !p.NoNewPrivs {
		sets.Effective = sets.Effective.Add(caps.SysAdmin)
		sets.Permitted = sets.Permitted.Add(caps.SysAdmin)
	}
	ppid := unix.Getppid()
	debug.SetGCPercent(-1)

	// 2. oom_score_adj, a process attribute.
	if p.OOMScoreAdj != nil {
		if err := writeOOMScoreAdj(*p.OOMScoreAdj); err != nil {
			return err
		}
	}

	// 3. Bounding set, while the thread still has CAP_SETPCAP.
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_KEEPCAPS", err)
	}
	if p.Caps != nil {
		if err := caps.DropBounding(sets.Bounding, last); err != nil {
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
	if filter != nil {
		if err := seccomp.Install(filter); err != nil {
			return err
		}
	}

	// 10. Exec.
	err = syscall.Exec(cfg.Path, cfg.Args, cfg.Env) //nolint:gosec // G204: running the app is this function's job; Path and Args come from the validated manifest
	return &os.PathError{Op: "exec", Path: cfg.Path, Err: err}
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
