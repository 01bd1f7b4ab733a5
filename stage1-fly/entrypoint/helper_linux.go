package entrypoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/fly"
	"github.com/nosecone/nscn/stage1-fly/inroot"
	"github.com/nosecone/nscn/stage1-fly/podmount"
)

// processApp names the app's main process in runProcess and logs; the
// event handlers go by their appc names (fly.EventPreStart, …).
const processApp = "app"

// Descriptors of the pod process contract (see the package doc).
const (
	helperConfigFD = 3
	helperReportFD = 4
	helperLockFD   = 5
)

// reporter writes reports on the report pipe.
type reporter struct{ f *os.File }

func (r reporter) send(rep report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if _, err := r.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send report: %w", err)
	}
	return nil
}

// Helper is the pod process: the hidden mode of the run binary that run
// starts in a new mount namespace (see the package doc for its contract).
// It returns the process exit status: 0 once it has reported, ExitRuntime
// if it failed.
func Helper(ctx context.Context, stderr *os.File) int {
	// Nothing of the contract may reach the app.
	for _, fd := range []int{helperConfigFD, helperReportFD, helperLockFD} {
		unix.CloseOnExec(fd)
	}
	rep := reporter{f: os.NewFile(helperReportFD, "report pipe")}
	fail := func(err error) int {
		if rep.send(report{Event: eventFailed, Error: err.Error(), Class: className(err)}) != nil {
			// No run process listening (started by hand?): say it here.
			_, _ = fmt.Fprintln(stderr, ErrorLine(err))
		}
		return stage1abi.ExitRuntime
	}
	cfgFile := os.NewFile(helperConfigFD, "config pipe")
	var cfg helperConfig
	err := json.NewDecoder(cfgFile).Decode(&cfg)
	_ = cfgFile.Close()
	if err != nil {
		return fail(fmt.Errorf("read pod process config: %w", err))
	}
	log := NewLogger(stderr, cfg.Debug).With("pod", cfg.Pod, "app", cfg.App.Name)
	h := &helper{log: log, cfg: cfg, rep: rep}
	status, appRan, err := h.run(ctx)
	if err != nil {
		return fail(err)
	}
	if err := rep.send(report{Event: eventExited, Status: status, AppRan: appRan}); err != nil {
		_, _ = fmt.Fprintln(stderr, ErrorLine(err))
		return stage1abi.ExitRuntime
	}
	// The pod lock (fd 5) is held until the process exits.
	runtime.KeepAlive(rep.f)
	return 0
}

// helper is the state of the pod process.
type helper struct {
	log *slog.Logger
	cfg helperConfig
	rep reporter

	mu      sync.Mutex
	current *os.Process // the pre-start handler or app running now
	stopSig os.Signal   // first forwarded signal before the app started
}

// run sets the filesystem up, then runs pre-start, the app and post-stop.
func (h *helper) run(ctx context.Context) (status int, appRan bool, err error) {
	// Signals are caught before the pid file can name this process, and
	// forwarded to the running process; one arriving before the app
	// starts cancels it.
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, forwardedSignals...)
	defer signal.Stop(sigc)
	go h.forward(ctx, sigc)

	// Mount points get 0755 whatever stage0's umask; the app inherits
	// stage0's.
	umask := unix.Umask(0o022)
	root, err := h.setupRoot(ctx)
	unix.Umask(umask)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = root.Close() }()
	if err := unix.Fchdir(int(root.Fd())); err != nil {
		return 0, false, &os.PathError{Op: "fchdir", Path: h.cfg.Plan.RootFS, Err: err}
	}
	if err := unix.Chroot("."); err != nil {
		return 0, false, &os.PathError{Op: "chroot", Path: h.cfg.Plan.RootFS, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return 0, false, &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	h.log.DebugContext(ctx, "chrooted into the app rootfs", "rootfs", h.cfg.Plan.RootFS)
	if err := h.rep.send(report{Event: eventReady}); err != nil {
		return 0, false, err
	}

	app := h.cfg.App
	fsys := rootFS{root: root}
	creds, err := fly.ResolveCreds(fsys, app.User, app.Group, app.SupplementaryGIDs)
	if err != nil {
		return 0, false, err
	}
	if err := fly.CheckDir(fsys, app.WorkingDir); err != nil {
		return 0, false, err
	}
	pathEnv := fly.Getenv(app.Env, "PATH")
	appPath, err := fly.LookPath(fsys, app.Exec[0], pathEnv, app.WorkingDir)
	if err != nil {
		return 0, false, fmt.Errorf("app exec: %w", err)
	}
	var postStopPath string
	if len(app.PostStop) > 0 {
		if postStopPath, err = fly.LookPath(fsys, app.PostStop[0], pathEnv, app.WorkingDir); err != nil {
			return 0, false, fmt.Errorf("%s event handler: %w", fly.EventPostStop, err)
		}
	}
	h.log.DebugContext(ctx, "app credentials", "uid", creds.UID, "gid", creds.GID, "groups", creds.Groups)

	if len(app.PreStart) > 0 {
		p, err := fly.LookPath(fsys, app.PreStart[0], pathEnv, app.WorkingDir)
		if err != nil {
			return 0, false, fmt.Errorf("%s event handler: %w", fly.EventPreStart, err)
		}
		st, err := h.runProcess(ctx, fly.EventPreStart, p, app.PreStart, rootCreds(), nil)
		if err != nil {
			return 0, false, err
		}
		if st != 0 && h.stopRequested() == nil {
			return 0, false, errdefs.FailedPrecondition("%s event handler %q exited with status %d", fly.EventPreStart, app.PreStart[0], st)
		}
	}
	if sig := h.stopRequested(); sig != nil {
		h.log.DebugContext(ctx, "stopped before the app started", "signal", sig.String())
		return stage1abi.SignalStatusBase + int(sig.(syscall.Signal)), false, nil
	}

	status, err = h.runProcess(ctx, processApp, appPath, app.Exec, creds, os.Stdin)
	if err != nil {
		return 0, false, err
	}
	h.log.DebugContext(ctx, "app exited", "status", status)

	if postStopPath != "" {
		st, err := h.runProcess(ctx, fly.EventPostStop, postStopPath, app.PostStop, rootCreds(), nil)
		switch {
		case err != nil:
			h.log.WarnContext(ctx, "post-stop event handler failed", "err", err)
		case st != 0:
			h.log.WarnContext(ctx, "post-stop event handler failed", "status", st)
		}
	}
	return status, true, nil
}

// setupRoot makes the mount namespace private, binds the rootfs onto
// itself and applies the mount plan; it returns an O_PATH handle on the
// finished rootfs mount.
func (h *helper) setupRoot(ctx context.Context) (*os.File, error) {
	p := h.cfg.Plan
	// Before anything else: the new namespace copied the host's shared
	// mounts, and a mount under a shared one would propagate back.
	h.log.DebugContext(ctx, "make mounts slaves", "path", "/")
	if err := podmount.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, "", "/"); err != nil {
		return nil, err
	}
	h.log.DebugContext(ctx, "bind rootfs onto itself", "rootfs", p.RootFS)
	if err := podmount.Mount(p.RootFS, p.RootFS, "", unix.MS_BIND|unix.MS_REC, "", p.RootFS); err != nil {
		return nil, err
	}
	root, err := inroot.OpenRoot(p.RootFS)
	if err != nil {
		return nil, fmt.Errorf("open app rootfs: %w", err)
	}
	mnt := fly.LoggingMounter{Next: podmount.InRoot{Root: root, Log: h.log}, Log: h.log}
	if err := fly.Apply(ctx, mnt, p); err != nil {
		_ = root.Close()
		return nil, err
	}
	if p.ReadOnlyRoot {
		h.log.DebugContext(ctx, "make rootfs read-only", "rootfs", p.RootFS)
		if err := podmount.SetMountAttrs(root, unix.MOUNT_ATTR_RDONLY, false, "/"); err != nil {
			_ = root.Close()
			return nil, err
		}
	}
	return root, nil
}

func rootCreds() fly.Creds { return fly.Creds{UID: 0, GID: 0, Groups: []uint32{}} }

// runProcess runs one process of the app (the app itself or an event
// handler) in the chroot and waits for it. A nil stdin means /dev/null.
// Forwarded signals reach the pre-start handler and the app, not
// post-stop. The status is the exit code, or SignalStatusBase plus the
// signal.
func (h *helper) runProcess(ctx context.Context, what, path string, argv []string, c fly.Creds, stdin *os.File) (int, error) {
	forward := what != fly.EventPostStop
	cmd := &exec.Cmd{
		Path:   path,
		Args:   argv,
		Env:    h.cfg.App.Env,
		Dir:    h.cfg.App.WorkingDir,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups},
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	h.mu.Lock()
	if forward && h.stopSig != nil {
		// Stopped before it started: do not start it.
		h.mu.Unlock()
		return stage1abi.SignalStatusBase + int(h.stopSig.(syscall.Signal)), nil
	}
	err := cmd.Start()
	if err == nil && forward {
		h.current = cmd.Process
	}
	h.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("start %s %s: %w", what, path, err)
	}
	h.log.DebugContext(ctx, "started", "process", what, "pid", cmd.Process.Pid, "path", path, "uid", c.UID, "gid", c.GID)
	if what == processApp {
		if err := h.rep.send(report{Event: eventStarted, PID: cmd.Process.Pid}); err != nil {
			h.log.WarnContext(ctx, "report app start", "err", err)
		}
	}
	err = cmd.Wait()
	h.mu.Lock()
	h.current = nil
	h.mu.Unlock()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, fmt.Errorf("wait for %s: %w", what, err)
	}
	return exitStatus(cmd.ProcessState), nil
}

// forward passes signals to the running process and remembers the first
// one, so that an app not yet started never starts.
func (h *helper) forward(ctx context.Context, sigc <-chan os.Signal) {
	for sig := range sigc {
		h.mu.Lock()
		if h.stopSig == nil {
			h.stopSig = sig
		}
		p := h.current
		h.mu.Unlock()
		if p != nil {
			h.log.DebugContext(ctx, "forward signal", "signal", sig.String(), "pid", p.Pid)
			_ = p.Signal(sig)
		}
	}
}

// stopRequested returns the first forwarded signal, if any.
func (h *helper) stopRequested() os.Signal {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopSig
}
