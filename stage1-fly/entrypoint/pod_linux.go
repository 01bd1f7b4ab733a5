package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/appmount"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/podmount"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// processApp names the app's main process in runProcess and logs; the
// event handlers go by their appc names (appspec.EventPreStart, …).
const processApp = "app"

// pod is the state shared by run's goroutines and the pod thread (see the
// package doc).
type pod struct {
	log         *slog.Logger
	tl          *timeline.Timeline
	plan        appmount.Plan
	app         appspec.AppSpec
	interactive bool
	stdin       *os.File // the app's with --interactive; nil: /dev/null
	stdout      *os.File
	stderr      *os.File
	// appStarted is closed once the app (not a handler) has started.
	appStarted chan struct{}

	mu      sync.Mutex
	current *child    // the pre-start handler or app running now
	stopSig os.Signal // first forwarded signal
	killed  bool      // run gave up: start nothing more
}

// result is what the pod thread hands back when it is done.
type result struct {
	status int  // the app's status, or SignalStatusBase+signal if stopped before it ran
	appRan bool // the app was started: its status is to be recorded
	err    error
}

// start runs the pod on a new OS thread: it sends that thread's id on
// ready once the thread is chrooted with every mount in place, and the
// result on done when pre-start, the app and post-stop are over. ready
// is closed before done gets its one result, so a receiver sees the id
// (if the setup got that far) before the result.
func (p *pod) start(ctx context.Context, ready chan<- int, done chan<- result) {
	go func() {
		// Never unlocked: the thread's root, working directory, umask
		// and mount namespace are the pod's from its unshare on, and
		// the runtime ends a locked thread when its goroutine returns,
		// instead of reusing it for other goroutines. The app and the
		// handlers are forked from this thread, so their Pdeathsig fires
		// when it ends, that is when run dies.
		runtime.LockOSThread()
		status, appRan, err := p.run(ctx, ready)
		close(ready)
		done <- result{status: status, appRan: appRan, err: err}
	}()
}

// run is the pod thread: it sets the filesystem up, then runs pre-start,
// the app and post-stop.
func (p *pod) run(ctx context.Context, ready chan<- int) (status int, appRan bool, err error) {
	// CLONE_FS first gives this thread its own root, working directory
	// and umask (Go threads share one otherwise); CLONE_NEWNS needs it
	// and implies it, it is named for the reader.
	if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
		return 0, false, fmt.Errorf("create the pod's mount namespace: %w", &os.SyscallError{Syscall: "unshare", Err: err})
	}
	// Mount points get 0755 whatever stage0's umask; the app inherits
	// stage0's.
	umask := unix.Umask(0o022)
	root, err := p.setupRoot(ctx)
	unix.Umask(umask)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = root.Close() }()
	if err := unix.Fchdir(int(root.Fd())); err != nil {
		return 0, false, &os.PathError{Op: "fchdir", Path: p.plan.RootFS, Err: err}
	}
	if err := unix.Chroot("."); err != nil {
		return 0, false, &os.PathError{Op: "chroot", Path: p.plan.RootFS, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return 0, false, &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	p.log.DebugContext(ctx, "chrooted into the app rootfs", "rootfs", p.plan.RootFS, "tid", unix.Gettid())
	ready <- unix.Gettid()
	p.tl.Mark("root-ready")

	app := p.app
	fsys := rootFS{root: root}
	creds, err := appspec.ResolveCreds(fsys, app.User, app.Group, app.SupplementaryGIDs)
	if err != nil {
		return 0, false, err
	}
	if err := appspec.CheckDir(fsys, app.WorkingDir); err != nil {
		return 0, false, err
	}
	pathEnv := appspec.Getenv(app.Env, "PATH")
	appPath, err := appspec.LookPath(fsys, app.Exec[0], pathEnv, app.WorkingDir)
	if err != nil {
		return 0, false, fmt.Errorf("app exec: %w", err)
	}
	var postStopPath string
	if len(app.PostStop) > 0 {
		if postStopPath, err = appspec.LookPath(fsys, app.PostStop[0], pathEnv, app.WorkingDir); err != nil {
			return 0, false, fmt.Errorf("%s event handler: %w", appspec.EventPostStop, err)
		}
	}
	p.log.DebugContext(ctx, "app credentials", "uid", creds.UID, "gid", creds.GID, "groups", creds.Groups)

	if len(app.PreStart) > 0 {
		path, err := appspec.LookPath(fsys, app.PreStart[0], pathEnv, app.WorkingDir)
		if err != nil {
			return 0, false, fmt.Errorf("%s event handler: %w", appspec.EventPreStart, err)
		}
		st, err := p.runProcess(ctx, appspec.EventPreStart, path, app.PreStart, rootCreds(), nil)
		if err != nil {
			return 0, false, err
		}
		if st != 0 && p.stopRequested() == nil {
			return 0, false, errdefs.FailedPrecondition("%s event handler %q exited with status %d", appspec.EventPreStart, app.PreStart[0], st)
		}
	}
	if sig := p.stopRequested(); sig != nil {
		p.log.DebugContext(ctx, "stopped before the app started", "signal", sig.String())
		return stage1abi.SignalStatusBase + int(sig.(syscall.Signal)), false, nil
	}

	status, err = p.runProcess(ctx, processApp, appPath, app.Exec, creds, p.stdin)
	if err != nil {
		return 0, false, err
	}
	p.log.DebugContext(ctx, "app exited", "status", status)

	if postStopPath != "" {
		st, err := p.runProcess(ctx, appspec.EventPostStop, postStopPath, app.PostStop, rootCreds(), nil)
		switch {
		case err != nil:
			p.log.WarnContext(ctx, "post-stop event handler failed", "err", err)
		case st != 0:
			p.log.WarnContext(ctx, "post-stop event handler failed", "status", st)
		}
	}
	return status, true, nil
}

// setupRoot makes the mount namespace private, binds the rootfs onto
// itself and applies the mount plan; it returns an O_PATH handle on the
// finished rootfs mount.
func (p *pod) setupRoot(ctx context.Context) (*os.File, error) {
	plan := p.plan
	// Before anything else: the new namespace copied the host's shared
	// mounts, and a mount under a shared one would propagate back.
	p.log.DebugContext(ctx, "make mounts slaves", "path", "/")
	if err := podmount.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, "", "/"); err != nil {
		return nil, err
	}
	p.log.DebugContext(ctx, "bind rootfs onto itself", "rootfs", plan.RootFS)
	if err := podmount.Mount(plan.RootFS, plan.RootFS, "", unix.MS_BIND|unix.MS_REC, "", plan.RootFS); err != nil {
		return nil, err
	}
	root, err := inroot.OpenRoot(plan.RootFS)
	if err != nil {
		return nil, fmt.Errorf("open app rootfs: %w", err)
	}
	mnt := appmount.LoggingMounter{Next: podmount.InRoot{Root: root, Log: p.log}, Log: p.log}
	if err := appmount.Apply(ctx, mnt, plan); err != nil {
		_ = root.Close()
		return nil, err
	}
	if plan.ReadOnlyRoot {
		p.log.DebugContext(ctx, "make rootfs read-only", "rootfs", plan.RootFS)
		if err := podmount.SetMountAttrs(root, unix.MOUNT_ATTR_RDONLY, false, "/"); err != nil {
			_ = root.Close()
			return nil, err
		}
	}
	return root, nil
}

func rootCreds() appspec.Creds { return appspec.Creds{UID: 0, GID: 0, Groups: []uint32{}} }

// runProcess runs one process of the app (the app itself or an event
// handler) in the chroot and waits for it. It must be called on the pod
// thread, which forks the process. A nil stdin means /dev/null. Forwarded
// signals reach the pre-start handler and the app, not post-stop. The
// status is the exit code, or SignalStatusBase plus the signal.
//
// The process is started with syscall.ForkExec and a pidfd, not with
// os/exec: the os package forks and reaps a probe child once per process
// to check that pidfds work before its first start, a fork and a wait on
// the way to every app's exec.
func (p *pod) runProcess(ctx context.Context, what, path string, argv []string, c appspec.Creds, stdin *os.File) (int, error) {
	forward := what != appspec.EventPostStop
	if stdin == nil {
		// Opened on the pod thread: the chroot's /dev/null, as os/exec
		// did.
		null, err := os.Open(os.DevNull)
		if err != nil {
			return 0, fmt.Errorf("start %s %s: %w", what, path, err)
		}
		defer func() { _ = null.Close() }()
		stdin = null
	}
	pidfd := -1
	attr := &syscall.ProcAttr{
		Dir:   p.app.WorkingDir,
		Env:   p.app.Env,
		Files: []uintptr{stdin.Fd(), p.stdout.Fd(), p.stderr.Fd()},
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups},
			Pdeathsig:  syscall.SIGKILL,
			// Without a terminal to share, keep the app out of the
			// terminal's process group: run forwards signals once.
			Setpgid: !p.interactive,
			PidFD:   &pidfd,
		},
	}
	p.mu.Lock()
	switch {
	case p.killed:
		p.mu.Unlock()
		return 0, errors.New("run gave up")
	case forward && p.stopSig != nil:
		// Stopped before it started: do not start it.
		p.mu.Unlock()
		return stage1abi.SignalStatusBase + int(p.stopSig.(syscall.Signal)), nil
	}
	pid, err := syscall.ForkExec(path, argv, attr) //nolint:gosec // G204: running the app is this function's job
	if err == nil {
		p.current = &child{pid: pid, pidfd: pidfd}
	}
	p.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("start %s %s: %w", what, path, &os.PathError{Op: "fork/exec", Path: path, Err: err})
	}
	p.tl.Mark(what + "-started")
	if what == processApp {
		close(p.appStarted)
	}
	p.log.DebugContext(ctx, "started", "process", what, "pid", pid, "path", path, "uid", c.UID, "gid", c.GID)
	ws, err := wait(pid)
	p.tl.Mark(what + "-exited")
	p.mu.Lock()
	p.current = nil
	// After the reap and under the lock: forward and kill see either
	// the child with its open pidfd or no child.
	_ = syscall.Close(pidfd)
	p.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("wait for %s: %w", what, err)
	}
	return exitStatus(ws), nil
}

// child is a process the pod thread started, signalled through its pidfd
// so that a signal never reaches a process that reused its pid.
type child struct {
	pid   int
	pidfd int
}

func (c *child) signal(sig syscall.Signal) error {
	err := unix.PidfdSendSignal(c.pidfd, sig, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// wait reaps pid, retrying when a signal interrupts the wait.
func wait(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return ws, &os.SyscallError{Syscall: "wait4", Err: err}
		}
		return ws, nil
	}
}

// forward passes signals to the running pre-start handler or app and
// remembers the first one, so that an app not yet started never starts.
func (p *pod) forward(ctx context.Context, sigc <-chan os.Signal) {
	for sig := range sigc {
		p.mu.Lock()
		if p.stopSig == nil {
			p.stopSig = sig
		}
		cur := p.current
		p.mu.Unlock()
		if cur == nil {
			continue
		}
		p.log.DebugContext(ctx, "forward signal", "signal", sig.String(), "pid", cur.pid)
		if err := cur.signal(sig.(syscall.Signal)); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.log.WarnContext(ctx, "forward signal", "signal", sig.String(), "pid", cur.pid, "err", err)
		}
	}
}

// kill makes the pod thread give up: the running process is killed and
// nothing more is started, post-stop included.
func (p *pod) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed = true
	if p.current != nil {
		_ = p.current.signal(syscall.SIGKILL)
	}
}

// stopRequested returns the first forwarded signal, if any.
func (p *pod) stopRequested() os.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopSig
}
