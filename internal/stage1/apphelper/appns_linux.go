package apphelper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/ownthread"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Each app, and each of its event handlers, runs in a PID namespace of
// its own (issue #11): with the pod's shared one, an app running as the
// same user with the same capabilities as another app of the pod read
// that app's files through /proc/PID/root. Two or three processes do
// it. The shim (the unit's main process, the helper, in the pod's PID
// namespace) joins the app's cgroups; a thread of its own unshares
// CLONE_NEWPID and starts the namespace's init (pid 1, sdpod.AppInit,
// stage1/cmd/app-init: non-dumpable, catches every signal, reaps
// orphans). Then the app's process, by one of two paths:
//
//	fast path (startFast): the shim's   other path (reexecInNamespaces): the
//	thread itself, while another        thread that started the init starts
//	thread makes the PID namespace      /proc/self/exe with CLONE_NEWNS
//	and starts the init                 (|CLONE_NEWCGROUP), modeExecIn,
//	                                    initConfig on fd 3, sync pipe on fd 4
//	  unshare(CLONE_NEWNS                 in that process:
//	    |CLONE_NEWCGROUP)
//	  ── enterApp: mounts slaves; open the creds record; isolate.Prepare
//	     (oom_score_adj); pivot_root, the old root detached; creds, record;
//	     a procfs of the app's PID namespace on /proc, its restricted
//	     paths (the fast path waits for the other thread here); look the
//	     program up ──
//	  setns(CLONE_NEWPID): its children
//	  are born in the app's namespace
//	  isolate.Start: confine the          isolate.Exec: confine the process
//	  thread, fork and exec the app       and exec the app; EOF on fd 4 (one
//	  from it; the thread then ends       error line instead)
//
// and the shim says READY=1, waits for the app, SIGKILLs the init (the
// kernel kills what is left of the namespace) and exits as the app did.
//
// The fast path saves a Go process start, the main cost here (tens of
// milliseconds on a small host), and is taken when it can be: it mounts
// the app's /proc from outside the namespace, with procfs's pidns option
// (Linux 6.15 on: procfsTakesPIDNS probes it), and isolate.Start must be
// able to apply the app's policy on a thread that then forks
// (isolate.StartSafe: no seccomp filter that names what the Go runtime or
// the fork need). Otherwise the other path, in which the process mounting
// /proc is in the namespace and the filter is the last thing before
// execve. The fast path's threads take the two slowest steps of an app's
// start, both mostly waits, off the shim's: the init's fork and exec
// (syscall.ForkExec returns once the child has exec'd) and the RCU grace
// period the detach of the pod's mounts at the pivot_root waits for
// (pivotInto, detachOldRoot: the shim's thread goes on once the mounts are
// out of the namespace, a third thread waits).
//
// Every child is the shim's: a thread of the shim forks them into the new
// namespace, the init first, as its pid 1 (the app's thread can join the
// namespace only once it has its init). So the shim waits for the app
// itself, and the init's Go start runs beside the app's start instead of
// before it.
//
// Why not make the app pid 1 of its namespace, as docker and podman do by
// default? (It is, when it asks: app.PID1, pidOneInNamespace; the CRI's
// CONTAINER mode.) A PID namespace's init gets no signal it has no handler for,
// not even from itself: the apps' signal semantics would change (an app
// that does not catch SIGTERM would survive systemd's stop and be killed
// after TimeoutStopSec; `kill -9 $$` in a shell app would do nothing; ^C
// on the console would not end it), and an app that does not reap its
// children would leave zombies. With an init of our own, the app is an
// ordinary process that gets what it got before: systemd's SIGTERM on
// stop (KillMode=control-group signals every process of the unit, the
// app and its children included), the console's signals (the terminal
// signals its foreground process group, the shim's and the app's; the
// init has a group of its own). So the
// shim and the init forward nothing: they catch every signal and drop
// it, so that none kills them first (the Go runtime handles most signals
// itself, and by default dies of them), and SIGKILL from systemd ends
// them with the rest of the unit. Forwarding would deliver the same
// signal to the app two or three times.
//
// The init stays in the shim's mount namespace (the pod's copy in which
// the shim made the app's tree, privmnt_linux.go) and root (it reads and
// mounts nothing, and enter, which looks for a process whose root is the
// app's, never takes it for the app). The app sees it as pid 1 but cannot
// reach its root: it is not dumpable, so /proc/1/root needs
// CAP_SYS_PTRACE, which no app has by default.
//
// Why a shim at all? The unit's main process cannot enter a PID
// namespace of its own (a process's PID namespace never changes), and
// systemd reads the app's status from the main process: the shim mirrors
// it (mirrorStatus), so EXIT_CODE and EXIT_STATUS, which the reap mode
// records, are as before.

// initConfig is what the shim hands the process that becomes the app on
// fd 3.
type initConfig struct {
	Argv  []string `json:"argv"`
	AsApp bool     `json:"asApp,omitempty"`
	// ListenFDs is the number of sockets systemd passed the shim for the
	// app (socket activation: LISTEN_FDS), which the app gets as its
	// descriptors 3 on, with LISTEN_FDS, LISTEN_FDNAMES (ListenNames)
	// and LISTEN_PID (ListenPID, its own pid as it sees it) set.
	ListenFDs   int    `json:"listenFDs,omitempty"`
	ListenNames string `json:"listenNames,omitempty"`
	ListenPID   int    `json:"listenPID,omitempty"`
	// prepared, when set, is the app's policy as isolate.Prepare made it
	// already: ModeHostExec's process prepares it on the host, whose
	// /proc/self names it, before it joins the pod's mounts.
	prepared *isolate.Prepared
	// TTY: fd 0 is the slave of the app's terminal (tty_linux.go), to
	// become the controlling terminal of a session of the app's own.
	TTY bool `json:"tty,omitempty"`
}

// envListenFDs tells the process that becomes the app (modeExecIn) how
// many sockets come before its config and sync descriptors.
const envListenFDs = "NSCN_LISTEN_FDS"

// listenFDs returns the number of sockets systemd passed this process
// (sd_listen_fds(3): LISTEN_PID is ours, LISTEN_FDS of them from fd 3)
// and their names, and makes them close-on-exec here: only the app gets
// them, at the same numbers.
func listenFDs() (int, string) {
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return 0, ""
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return 0, ""
	}
	for fd := 3; fd < 3+n; fd++ {
		unix.CloseOnExec(fd)
	}
	return n, os.Getenv("LISTEN_FDNAMES")
}

// withListenFDs appends the descriptors 3 … 3+n-1 to files.
func withListenFDs(files []uintptr, n int) []uintptr {
	for fd := 3; fd < 3+n; fd++ {
		files = append(files, uintptr(fd))
	}
	return files
}

// exitInfo is how a process ended: its exit code, or the signal that
// killed it (Signal non-zero).
type exitInfo struct {
	Code   int `json:"code"`
	Signal int `json:"signal,omitempty"`
}

// status is the app status of e, as sdpod.ExitStatus makes it from what
// systemd reports of the helper that mirrors e.
func (e exitInfo) status() int {
	if e.Signal != 0 {
		return stage1abi.SignalStatusBase + e.Signal
	}
	return e.Code
}

// Descriptors of the app process's contract.
const (
	nsConfigFD = 3 // read end of the config pipe (initConfig)
	nsSyncFD   = 4 // write end of the sync pipe: EOF at the exec, or one error line
)

// execApp runs the app (or its event handler, o.handler) confined by
// the app's policy in a PID and mount namespace of its own, as the app's
// user for the app itself, as root for a handler, and returns the status
// to exit with (the app's, see mirrorStatus). Handlers get the app's
// policy too (capabilities, no_new_privs, seccomp, oom_score_adj,
// cgroup): the spec only says they run as root, and a handler must not be
// a way around the app's restrictions. See Documentation/isolators.md.
func execApp(ctx context.Context, log *slog.Logger, app *sdpod.App, o execOpts) (int, error) {
	s := app.Spec
	argv := s.Exec
	switch o.handler {
	case ModePreStart:
		argv = s.PreStart
	case ModePostStop:
		argv = s.PostStop
	}
	if len(argv) == 0 {
		return 0, errdefs.InvalidArgument("app %s: nothing to run", s.Name)
	}
	if o.asApp && app.Stdin != "" {
		if err := openStdin(app.Stdin); err != nil {
			return 0, err
		}
	}
	if err := joinAppCgroup(app); err != nil {
		return 0, err
	}
	o.stdio = [3]uintptr{os.Stdin.Fd(), os.Stdout.Fd(), os.Stderr.Fd()}
	if o.asApp {
		o.listenFDs, o.listenNames = listenFDs()
	}
	var out *appOutput
	if app.Journal {
		var err error
		if out, err = startAppOutput(ctx, log, s.Name); err != nil {
			return 0, err
		}
		// On every return: by then the app's namespace, and every
		// process that had the pipes, is gone, and the helper's own
		// ends close before the wait.
		defer out.Close()
		o.stdio[1], o.stdio[2] = out.Stdout.Fd(), out.Stderr.Fd()
	}
	var tty *appTTY
	if o.asApp && app.TTY {
		var err error
		if tty, err = ttyOf(ctx, log, app, o.stdio[1]); err != nil {
			return 0, err
		}
		// Deferred after out.Wait, so it runs first: the terminal's
		// output reaches the pipe before the pipe's copy ends.
		defer tty.Wait()
		sl := tty.Slave.Fd()
		o.stdio = [3]uintptr{sl, sl, sl}
		o.tty = true
	}
	var notify *net.UnixConn
	if o.notifyReady {
		var err error
		if notify, err = DialNotify(os.Getenv("NOTIFY_SOCKET")); err != nil {
			return 0, fmt.Errorf("app %s: %w", s.Name, err)
		}
		defer func() { _ = notify.Close() }()
	}
	if o.asApp && o.hostPID {
		if o.tty {
			// The spawner's process would need the terminal as its
			// controlling one, and this helper would hold the slave
			// open: refused (the CRI refuses it before).
			return 0, errdefs.Newf(errdefs.ErrNotImplemented, "app %s: a terminal in the host's PID namespace", s.Name)
		}
		return execOnHost(ctx, log, app, o, out, notify)
	}
	// Every signal is caught and dropped (see above), from before the
	// init exists until the helper mirrors the app's status.
	defer dropSignals()()
	start := time.Now()
	// The namespaces are entered on a thread of their own, which ends
	// with the goroutine (it is never unlocked): in the fast path it
	// takes the app's mount namespace, root, credentials and filter, and
	// the shim's other threads must keep the pod's. The children are
	// started with syscall.ForkExec and waited for by pid: os.StartProcess
	// would first check, once per process, that pidfds work, by starting
	// a child that exits at once, which costs a fork on this path (and,
	// before the init, would be the namespace's pid 1, whose exit ends
	// the namespace).
	var r nsStart
	// Its debug lines are written once the app has exec'd (deferLog):
	// written as they come, they would cost the start what they say.
	nsLog, flush := deferLog(log)
	ownthread.Run(func() { r = startInNamespaces(ctx, nsLog, app, o, argv) })
	flush()
	if tty != nil {
		tty.CloseSlave()
	}
	if r.err != nil {
		if r.init > 0 {
			// From this thread: the one that started it may have taken
			// the app's credentials, which may not signal it.
			_ = unix.Kill(r.init, unix.SIGKILL)
			_, _ = wait(r.init)
		}
		return 0, r.err
	}
	// From the shim's decision to start the app to the app's exec.
	log.DebugContext(ctx, "app running in its namespaces", "took", time.Since(start), "fast", r.fast)
	timeline.FromContext(ctx).Mark("app-running")
	if notify != nil {
		if _, err := notify.Write([]byte("READY=1")); err != nil {
			log.WarnContext(ctx, "notify the pod's systemd", "err", err)
		}
	}
	ws, err := wait(r.app)
	if err != nil {
		if r.init > 0 {
			_ = unix.Kill(r.init, unix.SIGKILL)
			_, _ = wait(r.init)
		}
		return 0, fmt.Errorf("app %s: wait for it: %w", s.Name, err)
	}
	if r.init == 0 {
		// The app was pid 1 (app.PID1): its end ended the namespace.
		return o.finish(out, waitExit(syscall.WaitStatus(ws))), nil
	}
	// The app has ended: the init goes, and with it what the app left in
	// its namespace.
	_ = unix.Kill(r.init, unix.SIGKILL)
	iws, ierr := wait(r.init)
	if ierr == nil && iws.Exited() {
		// Ended on its own, so it killed the app's namespace.
		return 0, fmt.Errorf("app %s: the init of its pid namespace exited with status %d", s.Name, iws.ExitStatus())
	}
	return o.finish(out, waitExit(syscall.WaitStatus(ws))), nil
}

// finish hands the app's end e to o.exited, if set, once what the app
// wrote is copied (out, nil without the pod's journal): it is in the
// journal's socket and the FIFOs before its status is recorded and the
// pod may end. It returns the status to exit with (mirrorStatus).
func (o execOpts) finish(out *appOutput, e exitInfo) int {
	if o.exited != nil {
		if out != nil {
			out.Wait()
		}
		o.exited(e.status(), out)
	}
	return mirrorStatus(e)
}

// wait waits for the child pid to end.
func wait(pid int) (unix.WaitStatus, error) {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ws, &os.SyscallError{Syscall: "wait4", Err: err}
		}
		return ws, nil
	}
}

// nsStart is what startInNamespaces leaves for the shim: the init of the
// app's PID namespace and the app's process, started; or the error.
type nsStart struct {
	init int  // pid, 0 when not started
	app  int  // pid
	fast bool // the app was started from the shim's thread (enterAndStart)
	err  error
}

// startInNamespaces makes a PID namespace for the app, starts its init
// and the app in it and returns them once the app has exec'd. It runs on
// a locked thread that ends after it: the namespaces it enters and, in
// the fast path, the app's confinement are that thread's.
//
// The fast path (startFast) enters the app's mount namespace and root on
// this thread and starts the app from it, so that no process is started
// just to confine itself, while another thread makes the PID namespace
// and starts its init. It needs a kernel whose procfs takes the pidns
// option (Linux 6.15 on: the thread is not in the namespace whose /proc it
// mounts) and a policy that isolate.Start can apply. The other path
// starts the init, then the helper again in the app's namespaces
// (execInNamespace), which mounts the /proc of the namespace it is in.
func startInNamespaces(ctx context.Context, log *slog.Logger, app *sdpod.App, o execOpts, argv []string) (r nsStart) {
	s := app.Spec
	begin := time.Now()
	cfg := initConfig{Argv: argv, AsApp: o.asApp, ListenFDs: o.listenFDs, ListenNames: o.listenNames, TTY: o.tty}
	if o.hostIPC {
		// The app's process is forked from this thread by every path
		// below: it is born in the IPC namespace the thread is in.
		if err := joinHostIPC(); err != nil {
			return nsStart{err: fmt.Errorf("app %s: join the host's IPC namespace: %w", s.Name, err)}
		}
	}
	// An app with sockets takes the other path: LISTEN_PID must be its
	// pid as it sees it, which only the process that execs it knows (the
	// init's threads take pids of the namespace too).
	if o.asApp && app.PID1 {
		// No init: the first process born in the namespace, the
		// helper again, becomes the app (pidOneInNamespace).
		r.app, r.err = pidOneInNamespace(ctx, log, app, o, cfg)
		if r.err == nil {
			log.DebugContext(ctx, "containment: app namespaces entered", "took", time.Since(begin), "fast", false, "pid1", true)
			timeline.FromContext(ctx).Mark("app-namespaces-entered")
		}
		return r
	}
	// An app with a terminal too: only the process that execs it can
	// make its session and take the terminal (prepareAndExec).
	if isolate.StartSafe(app.Policy) && cfg.ListenFDs == 0 && !cfg.TTY && procfsTakesPIDNS() {
		r.fast = true
		r.init, r.app, r.err = startFast(ctx, log, app, o, cfg, begin)
		if r.err != nil {
			r.err = fmt.Errorf("app %s: %w", s.Name, r.err)
		}
		return r
	}
	if err := unix.Unshare(unix.CLONE_NEWPID); err != nil {
		return nsStart{err: &os.SyscallError{Syscall: "unshare(CLONE_NEWPID)", Err: err}}
	}
	init, err := startInit(ctx, log, s.Name)
	if err != nil {
		return nsStart{err: err}
	}
	r.init = init
	// From here on, on failure, the shim kills the init (execApp).
	r.app, r.err = reexecInNamespaces(ctx, log, app, o, cfg)
	if r.err == nil {
		// Only the process that execs knows when it is in: the bound
		// here includes its start and its exec.
		log.DebugContext(ctx, "containment: app namespaces entered", "took", time.Since(begin), "fast", false)
		timeline.FromContext(ctx).Mark("app-namespaces-entered")
	}
	return r
}

// pidOneInNamespace makes a PID namespace for the app (app.PID1) on the
// calling thread, which must be locked for good, and starts the helper
// again in it (reexecInNamespaces) with no init before it: that process
// is the namespace's pid 1, and so is the app it execs. It takes the
// other path whatever the kernel and the policy allow, since the fast
// path's app is forked once the namespace has its init. The app then
// gets no signal it has no handler for (the kernel's rule for an init;
// SIGKILL from the unit's stop still ends it), reaps its own orphans,
// and its end kills the rest of its namespace.
func pidOneInNamespace(ctx context.Context, log *slog.Logger, app *sdpod.App, o execOpts, cfg initConfig) (int, error) {
	if err := unix.Unshare(unix.CLONE_NEWPID); err != nil {
		return 0, &os.SyscallError{Syscall: "unshare(CLONE_NEWPID)", Err: err}
	}
	return reexecInNamespaces(ctx, log, app, o, cfg)
}

// startInit starts the init of the PID namespace the calling thread's
// children are born in (unshare(CLONE_NEWPID) just before), its pid 1.
func startInit(ctx context.Context, log *slog.Logger, name string) (int, error) {
	// No Pdeathsig on either child: each sees a parent pid of 0 (its
	// parent is outside its namespace), which the Go runtime takes for a
	// dead parent. When the shim dies, systemd kills the unit's cgroup.
	start := time.Now()
	// A process group of its own: the terminal's signals (^C, ^\, ^Z)
	// go to the foreground group, the shim's and the app's, and the init
	// must not get them before its handlers are in place (app-init): its
	// Go runtime would die of them, and the app's namespace with it. The
	// app may well run before then, now that it does not wait for a Go
	// start of its own.
	init, err := syscall.ForkExec(sdpod.AppInit, []string{sdpod.AppInit, name}, &syscall.ProcAttr{ //nolint:gosec // G204: the stage1's own binary; the argument, the app's name, is for ps
		Env: []string{}, Files: []uintptr{^uintptr(0), ^uintptr(0), os.Stderr.Fd()},
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("app %s: start the init of its pid namespace: %w", name, err)
	}
	log.DebugContext(ctx, "app init started", "took", time.Since(start))
	return init, nil
}

// appPIDNS is the app's PID namespace as newPIDNamespace leaves it: its
// init's pid, a descriptor of the namespace and a procfs filesystem
// context showing it (pidNSProcfs); or the error.
type appPIDNS struct {
	init, ns, procfs int
	err              error
}

// close closes the namespace's descriptors (the init is the caller's).
func (n *appPIDNS) close() {
	for _, fd := range []int{n.ns, n.procfs} {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
	}
}

// newPIDNamespace makes a PID namespace on the calling thread, which
// must be locked for good, and starts its init there.
func newPIDNamespace(ctx context.Context, log *slog.Logger, name string) appPIDNS {
	n := appPIDNS{ns: -1, procfs: -1}
	if err := unix.Unshare(unix.CLONE_NEWPID); err != nil {
		n.err = &os.SyscallError{Syscall: "unshare(CLONE_NEWPID)", Err: err}
		return n
	}
	if n.init, n.err = startInit(ctx, log, name); n.err != nil {
		return n
	}
	// Only once the namespace has its init: before, the kernel has no
	// namespace to show here (ENOENT).
	const p = "/proc/thread-self/ns/pid_for_children"
	var err error
	if n.ns, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		n.ns, n.err = -1, &os.PathError{Op: "open", Path: p, Err: err}
		return n
	}
	if n.procfs, err = pidNSProcfs(n.ns); err != nil {
		n.err = err
	} else if n.procfs < 0 {
		n.err = errors.New("the kernel's procfs takes no pidns option")
	}
	return n
}

// startFast is the fast path of startInNamespaces: three threads work at
// once. One makes the app's PID namespace and starts its init
// (newPIDNamespace: the init's fork and exec take a good part of the
// app's start, mostly waiting for a CPU), one stands by to detach the
// pod's mounts (startDetacher), while this one enters a mount namespace
// of its own and the app's root and confines itself by the app's policy;
// it waits for the others only where it needs them: for the detach to
// have taken the pod's mounts out of the namespace (not for the grace
// period after it), for the namespace to mount the app's /proc; then it
// joins the namespace for its children (setns) and starts the app (as
// the app's user, or root for a handler), the second process of the
// namespace:
//
//	this thread                      init thread             detacher
//	unshare(CLONE_NEWNS              unshare(CLONE_NEWPID)   unshare(CLONE_FS)
//	  |CLONE_NEWCGROUP)              fork and exec the init
//	enterApp: mounts slaves, creds   (pid 1); open           setns(this one's
//	  record, isolate.Prepare;       pid_for_children, a       mount namespace)
//	  pivot_root ── the old root ──> procfs context of it    detach the old
//	  its mount table, until the                             root; wait for
//	  old root is out; creds                                 the grace period
//	  ── waits for the init thread ──
//	  /proc; the program
//	setns(CLONE_NEWPID)
//	isolate.Start: confine the thread, fork and exec the app; the thread
//	then ends
//
// It returns the init's pid whenever it was started, so that the caller
// kills it on failure.
func startFast(ctx context.Context, log *slog.Logger, app *sdpod.App, o execOpts, cfg initConfig, begin time.Time) (init, pid int, err error) {
	var ns appPIDNS
	done := ownthread.Go(func() { ns = newPIDNamespace(ctx, log, app.Spec.Name) })
	// And a third for the detach of the pod's mounts (pivotInto), started
	// now: a thread's start can take milliseconds on a busy host.
	detacher, stopDetacher := startDetacher()
	defer stopDetacher()
	waited := false
	await := func() (int, error) {
		if !waited {
			<-done
			waited = true
		}
		return ns.procfs, ns.err
	}
	defer func() {
		_, _ = await() // on every return: the init, if any, is the caller's to kill
		init = ns.init
		ns.close()
	}()
	flags := unix.CLONE_NEWNS
	if o.unified {
		flags |= unix.CLONE_NEWCGROUP
	}
	if err := unix.Unshare(flags); err != nil {
		return 0, 0, &os.SyscallError{Syscall: "unshare(CLONE_NEWNS)", Err: err}
	}
	// Opened in the namespace's copy of the pod's mounts, before the
	// pivot_root: the old root's detach is made on another thread too.
	fds, err := openDetachFDs(detacher)
	if err != nil {
		return 0, 0, err
	}
	defer fds.close()
	pr, ec, err := enterApp(ctx, log, app, cfg, await, fds)
	if err != nil {
		return 0, 0, err
	}
	// The app, forked from this thread, is born in the app's namespace.
	if err := unix.Setns(ns.ns, unix.CLONE_NEWPID); err != nil {
		return 0, 0, &os.SyscallError{Syscall: "setns(CLONE_NEWPID)", Err: err}
	}
	// make bench reads the containment's cost from this line and the
	// seal's: what the app's namespaces, the init and the app's root
	// add before the app's own start, which it had before them (an exec
	// then, a fork and exec now).
	log.DebugContext(ctx, "containment: app namespaces entered", "took", time.Since(begin), "fast", true)
	timeline.FromContext(ctx).Mark("app-namespaces-entered")
	start := time.Now()
	pid, err = pr.Start(ec, withListenFDs(o.stdio[:], cfg.ListenFDs))
	if err == nil {
		log.DebugContext(ctx, "app started", "took", time.Since(start))
	}
	return 0, pid, err
}

// procfsTakesPIDNS reports whether the kernel's procfs takes the pidns
// option (Linux 6.15 on), by asking for the calling thread's own PID
// namespace.
func procfsTakesPIDNS() bool {
	ns, err := unix.Open("/proc/thread-self/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer func() { _ = unix.Close(ns) }()
	fsfd, err := pidNSProcfs(ns)
	if err != nil || fsfd < 0 {
		return false
	}
	_ = unix.Close(fsfd)
	return true
}

// pidNSProcfs returns a procfs filesystem context (fsopen(2)) set to
// show the PID namespace of the descriptor ns, or -1 when the kernel's
// procfs has no pidns option.
func pidNSProcfs(ns int) (int, error) {
	fsfd, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, &os.SyscallError{Syscall: "fsopen(proc)", Err: err}
	}
	err = unix.FsconfigSetFd(fsfd, "pidns", ns)
	if errors.Is(err, unix.EINVAL) {
		_ = unix.Close(fsfd)
		return -1, nil
	}
	if err != nil {
		_ = unix.Close(fsfd)
		return -1, &os.SyscallError{Syscall: "fsconfig(pidns)", Err: err}
	}
	return fsfd, nil
}

// reexecInNamespaces starts the helper again (modeExecIn) in the app's
// PID namespace and a mount namespace of its own, hands it cfg and
// returns it once it has exec'd the app.
func reexecInNamespaces(ctx context.Context, log *slog.Logger, app *sdpod.App, o execOpts, cfg initConfig) (int, error) {
	s := app.Spec
	b, err := json.Marshal(cfg)
	if err != nil {
		return 0, fmt.Errorf("encode app config: %w", err)
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("create app config pipe: %w", err)
	}
	defer func() { _ = cfgW.Close() }()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		_ = cfgR.Close()
		return 0, fmt.Errorf("create app sync pipe: %w", err)
	}
	defer func() { _ = syncR.Close() }()
	flags := uintptr(unix.CLONE_NEWNS)
	if o.unified {
		flags |= unix.CLONE_NEWCGROUP
	}
	log.DebugContext(ctx, "start app", "argv", cfg.Argv)
	env := []string{}
	if cfg.ListenFDs > 0 {
		env = append(env, envListenFDs+"="+strconv.Itoa(cfg.ListenFDs))
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{sdpod.AppHelper, modeExecIn, s.Name}, &syscall.ProcAttr{ //nolint:gosec // G204: the helper itself, argv fixed but the app's name from the pod's config
		Env:   env,
		Files: append(withListenFDs(o.stdio[:], cfg.ListenFDs), cfgR.Fd(), syncW.Fd()),
		Sys:   &syscall.SysProcAttr{Cloneflags: flags},
	})
	_ = cfgR.Close()
	_ = syncW.Close()
	if err != nil {
		return 0, fmt.Errorf("app %s: start it in its pid namespace: %w", s.Name, err)
	}
	// The config fits in the pipe's buffer.
	_, werr := cfgW.Write(b)
	_ = cfgW.Close()
	line, rerr := io.ReadAll(io.LimitReader(syncR, 64<<10))
	if len(line) == 0 && rerr == nil && werr == nil {
		return pid, nil
	}
	_ = unix.Kill(pid, unix.SIGKILL)
	_, _ = wait(pid)
	switch {
	case len(line) > 0:
		return 0, errors.New(strings.TrimSpace(string(line)))
	case rerr != nil:
		return 0, fmt.Errorf("app %s: read its sync pipe: %w", s.Name, rerr)
	default:
		return 0, fmt.Errorf("app %s: send its config: %w", s.Name, werr)
	}
}

// dropSignals catches every signal but SIGKILL and SIGSTOP and drops it,
// until the function it returns is called (see execApp for why).
func dropSignals() (stop func()) {
	c := make(chan os.Signal, 16)
	signal.Notify(c)
	go func() {
		for range c {
			// dropped
		}
	}()
	return func() { signal.Stop(c) }
}

// waitExit is how the process of ws ended.
func waitExit(ws syscall.WaitStatus) exitInfo {
	if ws.Signaled() {
		return exitInfo{Signal: int(ws.Signal())}
	}
	return exitInfo{Code: ws.ExitStatus()}
}

// mirrorStatus makes the helper end as e says the app did, so that
// systemd reports the app's status as the main process's: for a death
// by a signal, the helper dies of that signal when it can (raisable),
// and otherwise exits with stage1abi.SignalStatusBase plus the signal,
// which sdpod.ExitStatus maps to the same status. It returns the exit
// status for main.
func mirrorStatus(e exitInfo) int {
	if e.Signal == 0 {
		return e.Code
	}
	sig := unix.Signal(e.Signal)
	if raisable(sig) {
		signal.Reset(sig)
		_ = unix.Kill(unix.Getpid(), sig)
		time.Sleep(time.Second) // the signal ends the process meanwhile
	}
	return stage1abi.SignalStatusBase + e.Signal
}

// raisable reports whether the helper can die of sig by sending it to
// itself after signal.Reset: the Go runtime restores the default action
// of these on its way out, while it turns the others (SIGQUIT, SIGABRT,
// the synchronous faults) into a crash report and exit status 2.
func raisable(sig unix.Signal) bool {
	switch sig {
	case unix.SIGKILL, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM:
		return true
	}
	return false
}

// execInNamespace is the process that becomes the app (modeExecIn), in
// the app's PID namespace and a mount namespace of its own: it makes
// the app's /proc, enters the app's root, resolves the credentials and
// the program there and calls isolate.Exec. On failure it writes one
// line on the sync pipe for the shim and returns the error.
func execInNamespace(ctx context.Context, log *slog.Logger, name string) error {
	// Sockets for the app come first, at 3 on (socket activation).
	listen, _ := strconv.Atoi(os.Getenv(envListenFDs))
	if listen < 0 {
		listen = 0
	}
	cfgFD, syncFD := nsConfigFD+listen, nsSyncFD+listen
	if err := unix.CloseRange(uint(cfgFD), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return &os.SyscallError{Syscall: "close_range", Err: err}
	}
	sync := os.NewFile(uintptr(syncFD), "app sync pipe")
	err := prepareAndExec(ctx, log, name, cfgFD)
	_, _ = sync.WriteString(oneLine(fmt.Errorf("app %s: %w", name, err)) + "\n")
	return err
}

// prepareAndExec is execInNamespace's work; it returns only on failure.
func prepareAndExec(ctx context.Context, log *slog.Logger, name string, cfgFD int) error {
	cfgFile := os.NewFile(uintptr(cfgFD), "app config")
	var cfg initConfig
	err := json.NewDecoder(cfgFile).Decode(&cfg)
	_ = cfgFile.Close()
	if err != nil {
		return fmt.Errorf("read app config: %w", err)
	}
	// This process becomes the app: its pid, as the app sees it.
	cfg.ListenPID = os.Getpid()
	if cfg.TTY {
		// A session of its own, whose controlling terminal is its
		// stdin, the terminal's slave (a forked child is no process
		// group leader, so setsid succeeds).
		if _, err := unix.Setsid(); err != nil {
			return &os.SyscallError{Syscall: "setsid", Err: err}
		}
		if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
			return &os.SyscallError{Syscall: "ioctl(TIOCSCTTY)", Err: err}
		}
	}
	pod, err := sdpod.LoadPod(sdpod.PodConfigFile)
	if err != nil {
		return err
	}
	app, err := pod.AppByName(name)
	if err != nil {
		return err
	}
	runtime.LockOSThread() // never unlocked: the thread becomes the app
	pr, ec, err := enterApp(ctx, log, app, cfg, nil, nil)
	if err != nil {
		return err
	}
	return pr.Exec(ec)
}

// enterApp makes the calling thread's mount namespace, a new one, the
// app's: its mounts slaves of the pod's, the app's root pivoted into, a
// procfs of the app's PID namespace on its /proc (from the filesystem
// context procfs returns, which may wait for the namespace, or, when
// procfs is nil, of the namespace the caller is in). It resolves the
// credentials (recording them, for an app) and the program there,
// prepares the app's policy and returns it with the program to run.
func enterApp(ctx context.Context, log *slog.Logger, app *sdpod.App, cfg initConfig, procfs func() (int, error), detach *detachFDs) (*isolate.Prepared, isolate.ExecConfig, error) {
	var ec isolate.ExecConfig
	if len(cfg.Argv) == 0 {
		return nil, ec, errdefs.InvalidArgument("nothing to run")
	}
	s := app.Spec
	log = log.With("app", s.Name)
	start := time.Now()
	// The namespace's mounts are copies of the pod's: slaves, so that
	// what the app mounts stays its own and what the pod mounts later
	// still reaches it, and so that the detach of the old root does not
	// propagate back.
	// Shared mounts (the CRI's bidirectional ones) keep their peer group
	// across the slave step (shared_linux.go).
	shared, err := cloneShared(app.Plan.RootFS, app.Plan)
	if err != nil {
		return nil, ec, err
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		closeShared(shared)
		return nil, ec, &os.PathError{Op: "make mounts slave", Path: "/", Err: err}
	}
	if err := restoreShared(shared); err != nil {
		return nil, ec, err
	}
	// The record of the app's credentials, for enter: opened while the
	// pod's state directory is still in view.
	var record *os.File
	if cfg.AsApp {
		var err error
		if record, err = createCredsRecord(s.Name); err != nil {
			return nil, ec, err
		}
		defer func() { _ = record.Close() }()
	}
	// Prepared with the pod's /proc in view: it writes the process's
	// oom_score_adj through /proc/self, which the app's /proc has not
	// for a thread outside the app's namespace.
	pr := cfg.prepared
	if pr == nil {
		if pr, err = isolate.Prepare(app.Policy); err != nil {
			return nil, ec, err
		}
	}
	if w := pr.Withheld(); w != 0 {
		log.WarnContext(ctx, "the pod's user namespace withholds capabilities from the app", "caps", w.String())
	}
	mark := time.Now()
	if err := pivotInto(app.Plan.RootFS, detach); err != nil {
		return nil, ec, fmt.Errorf("enter its root: %w", err)
	}
	log.DebugContext(ctx, "app root pivoted into, the pod's detached", "took", time.Since(mark), "other thread", detach != nil)
	// The rootfs is now the root: symlinks in it cannot lead out of it.
	fsys := os.DirFS("/")
	creds := appspec.Creds{}
	if cfg.AsApp {
		if creds, err = appspec.ResolveCreds(fsys, s.User, s.Group, s.SupplementaryGIDs); err != nil {
			return nil, ec, err
		}
		if err := writeCredsRecord(record, creds); err != nil {
			return nil, ec, err
		}
	}
	// The /proc last: until here the other thread of startFast may still
	// be starting the namespace's init, and the pivot's detach of the
	// pod's mounts (which waits for an RCU grace period) runs meanwhile.
	var fsfd int
	if procfs != nil {
		fsfd, err = procfs()
	} else {
		fsfd, err = procfsContext()
		if err == nil {
			defer func() { _ = unix.Close(fsfd) }()
		}
	}
	if err != nil {
		return nil, ec, err
	}
	mark = time.Now()
	if err := mountProc(ctx, log, app.Policy, fsfd); err != nil {
		return nil, ec, err
	}
	log.DebugContext(ctx, "app /proc mounted", "took", time.Since(mark))
	if err := appspec.CheckDir(fsys, s.WorkingDir); err != nil {
		return nil, ec, err
	}
	path, err := appspec.LookPath(fsys, cfg.Argv[0], appspec.Getenv(s.Env, "PATH"), s.WorkingDir)
	if err != nil {
		return nil, ec, err
	}
	log.DebugContext(ctx, "containment: app root and /proc entered", "took", time.Since(start))
	log.DebugContext(ctx, "exec", "path", path, "uid", creds.UID, "gid", creds.GID, "groups", creds.Groups)
	env := slices.Clone(s.Env)
	if env == nil {
		env = []string{}
	}
	if cfg.ListenFDs > 0 {
		env = append(env, "LISTEN_FDS="+strconv.Itoa(cfg.ListenFDs), "LISTEN_PID="+strconv.Itoa(cfg.ListenPID))
		if cfg.ListenNames != "" {
			env = append(env, "LISTEN_FDNAMES="+cfg.ListenNames)
		}
	}
	return pr, isolate.ExecConfig{
		Path: path, Args: cfg.Argv, Env: env, Dir: s.WorkingDir,
		Creds: isolate.Creds{UID: creds.UID, GID: creds.GID, Groups: creds.Groups},
	}, nil
}

// mountProc mounts a procfs of the app's PID namespace on the /proc of
// the app's root, the calling thread's root by now (mountApp made the
// mount point and mounted nothing there: procMountPoint), from the
// filesystem context procfs, and restricts its paths of p. Every path is
// resolved in the root and every mount made through descriptors: the
// thread may not be in the namespace of that procfs, whose /proc/self
// would not name it. A root without /proc gets none.
func mountProc(ctx context.Context, log *slog.Logger, p *isolate.Policy, procfs int) error {
	root, err := inroot.OpenRoot("/")
	if err != nil {
		return fmt.Errorf("open app root: %w", err)
	}
	defer func() { _ = root.Close() }()
	dir, err := inroot.Open(root, "/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open the app's /proc: %w", err)
	}
	log.DebugContext(ctx, "mount a procfs of the app's pid namespace", "path", "/proc")
	err = mountProcfsContext(procfs, dir)
	_ = dir.Close()
	if err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	proc, _ := procPaths(p.Paths)
	return restrictPaths(ctx, log, root, proc)
}

// procfsContext returns a procfs filesystem context (fsopen(2)) of the
// PID namespace the caller is in.
func procfsContext() (int, error) {
	fsfd, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, &os.SyscallError{Syscall: "fsopen(proc)", Err: err}
	}
	return fsfd, nil
}

// mountProcfsContext creates the procfs of the filesystem context
// procfs and mounts it on dir.
func mountProcfsContext(procfs int, dir *os.File) error {
	if err := unix.FsconfigCreate(procfs); err != nil {
		return &os.SyscallError{Syscall: "fsconfig(proc, create)", Err: err}
	}
	mnt, err := unix.Fsmount(procfs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return &os.SyscallError{Syscall: "fsmount(proc)", Err: err}
	}
	defer func() { _ = unix.Close(mnt) }()
	if err := unix.MoveMount(mnt, "", int(dir.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount proc", Path: "/proc", Err: err}
	}
	return nil
}

// procPaths is the part of p below /proc, and rest the others.
func procPaths(p isolate.Paths) (proc, rest isolate.Paths) {
	split := func(paths []string) (in, out []string) {
		for _, s := range paths {
			if s == "/proc" || strings.HasPrefix(s, "/proc/") {
				in = append(in, s)
			} else {
				out = append(out, s)
			}
		}
		return in, out
	}
	proc.ReadOnly, rest.ReadOnly = split(p.ReadOnly)
	proc.Masked, rest.Masked = split(p.Masked)
	return proc, rest
}
