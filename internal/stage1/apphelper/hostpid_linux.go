package apphelper

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/stage1/hostpid"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/timeline"
)

// ModeHostExec is the app helper's mode for the process run's spawner
// starts on the host for a pod run with --pid=parent (sdpod.Pod.HostPID;
// stage1/entrypoint's spawner, package hostpid): it is born in the
// host's PID namespace, joins the namespaces of the app's helper, which
// asked for it, and becomes the app exactly as the helper's own
// ns-exec process would (enterApp, isolate.Exec), with a procfs of the
// host's PID namespace on the app's /proc. Its contract:
//
//	fd 0, 1, 2  the app's stdin, stdout and stderr (the helper's)
//	fd 3        HostExecConfig, JSON, from the spawner (read to EOF)
//	fd 4        a pidfd of the helper (setns(2) takes its namespaces)
//	fd 5        the sync pipe: EOF at the exec, or one error line
//
// Only run's spawner starts it, from the stage1 image on the host.
const ModeHostExec = "host-exec"

// Descriptors of ModeHostExec's contract.
const (
	HostExecConfigFD = 3
	HostExecPidfdFD  = 4
	HostExecSyncFD   = 5
)

// HostExecConfig is what the spawner hands the ModeHostExec process: the
// app's entry as the spawner computed it from the pod manifest (never
// from the pod's config or the request), and how the pod was run.
type HostExecConfig struct {
	App sdpod.App `json:"app"`
	// HostIPC: the process stays in the host's IPC namespace, which the
	// spawner has (--ipc=parent), instead of taking the helper's.
	HostIPC bool `json:"hostIPC,omitempty"`
	// Unified: a cgroup v2 host; the app gets a cgroup namespace rooted
	// at its cgroup, as the helper's ns-exec process does.
	Unified bool `json:"unified,omitempty"`
}

// hostExec is ModeHostExec: it writes its error, if any, on the sync
// pipe, where the spawner reads it.
func hostExec(ctx context.Context, log *slog.Logger, name string) error {
	if err := unix.CloseRange(HostExecConfigFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return &os.SyscallError{Syscall: "close_range", Err: err}
	}
	sync := os.NewFile(HostExecSyncFD, "sync pipe")
	err := hostExecApp(ctx, log, name)
	_, _ = sync.WriteString(oneLine(fmt.Errorf("app %s: %w", name, err)) + "\n")
	return err
}

// hostExecApp is hostExec's work; it returns only on failure.
func hostExecApp(ctx context.Context, log *slog.Logger, name string) error {
	cfgFile := os.NewFile(HostExecConfigFD, "host exec config")
	var cfg HostExecConfig
	err := json.NewDecoder(cfgFile).Decode(&cfg)
	_ = cfgFile.Close()
	if err != nil {
		return fmt.Errorf("read host exec config: %w", err)
	}
	if cfg.App.Spec.Name != name {
		return errdefs.InvalidArgument("the spawner's config is for app %q", cfg.App.Spec.Name)
	}
	runtime.LockOSThread() // never unlocked: the thread becomes the app
	// Prepared here, with the host's /proc in view: in the pod's, this
	// process (of the host's PID namespace) has no /proc/self.
	pr, err := isolate.Prepare(cfg.App.Policy)
	if err != nil {
		return err
	}
	// setns(CLONE_NEWNS) wants a filesystem context of the thread's own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return &os.SyscallError{Syscall: "unshare(CLONE_FS)", Err: err}
	}
	// The helper's namespaces, all at once through its pidfd: its mount
	// namespace (the pod's; root and working directory become the pod's
	// root), UTS, network, cgroup and, but with --ipc=parent, IPC. Not
	// its PID namespace: this process stays in the host's.
	flags := unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP
	if !cfg.HostIPC {
		flags |= unix.CLONE_NEWIPC
	}
	if err := unix.Setns(HostExecPidfdFD, flags); err != nil {
		return &os.SyscallError{Syscall: "setns(pidfd)", Err: err}
	}
	_ = unix.Close(HostExecPidfdFD)
	// Then a mount namespace of its own, a copy of the pod's, as the
	// helper's ns-exec process is cloned with.
	unshare := unix.CLONE_NEWNS
	if cfg.Unified {
		unshare |= unix.CLONE_NEWCGROUP
	}
	if err := unix.Unshare(unshare); err != nil {
		return &os.SyscallError{Syscall: "unshare(CLONE_NEWNS)", Err: err}
	}
	// From here exactly the helper's path: enterApp mounts a procfs of
	// the PID namespace this process is in, the host's.
	pr, ec, err := enterApp(ctx, log, &cfg.App, initConfig{Argv: cfg.App.Spec.Exec, AsApp: true, prepared: pr}, nil, nil)
	if err != nil {
		return err
	}
	return pr.Exec(ec)
}

// relaySignals are the signals the helper relays to an app in the
// host's PID namespace: every one but those the Go runtime uses or the
// helper gets for its own sake (SIGURG: preemption; SIGCHLD; SIGPIPE).
func relayable(sig syscall.Signal) bool {
	switch sig {
	case unix.SIGURG, unix.SIGCHLD, unix.SIGPIPE:
		return false
	}
	return true
}

// execOnHost is execApp for an app of a pod run with --pid=parent: run's
// spawner starts the app in the host's PID namespace (package hostpid)
// and this helper stays the unit's main process. The pod's systemd
// cannot signal a process outside the pod's PID namespace, so the helper
// relays every signal it gets (the unit's SIGTERM at a stop, the
// console's) to the app through the spawner; when it dies (the stop's
// SIGKILL), the connection closes and the spawner kills the app. Once
// the app has ended, the helper finishes as for an app in the pod
// (execOpts.finish: the output copied, the status recorded, the pod
// ended when due) and exits as the app did (mirrorStatus).
func execOnHost(ctx context.Context, log *slog.Logger, app *sdpod.App, o execOpts, out *appOutput, notify *net.UnixConn) (int, error) {
	s := app.Spec
	if o.listenFDs > 0 {
		return 0, errdefs.Newf(errdefs.ErrNotImplemented, "app %s: socket activation in the host's PID namespace", s.Name)
	}
	// Caught from before the start: a stop that comes meanwhile is
	// relayed once the app runs.
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc)
	defer signal.Stop(sigc)
	c, err := hostpid.Dial(ctx, sdpod.HostPIDSocket)
	if err != nil {
		return 0, fmt.Errorf("app %s: %w", s.Name, err)
	}
	defer func() { _ = c.Close() }() // again after the close below: harmless
	pid, err := c.Start(s.Name, o.stdio)
	if err != nil {
		return 0, fmt.Errorf("app %s: start it in the host's PID namespace: %w", s.Name, err)
	}
	log.DebugContext(ctx, "app running in the host's PID namespace", "pid", pid)
	timeline.FromContext(ctx).Mark("app-running")
	if notify != nil {
		if _, err := notify.Write([]byte("READY=1")); err != nil {
			log.WarnContext(ctx, "notify the pod's systemd", "err", err)
		}
	}
	go func() {
		for sig := range sigc {
			if n, ok := sig.(syscall.Signal); ok && relayable(n) {
				if err := c.Signal(int(n)); err != nil {
					return
				}
			}
		}
	}()
	f, err := c.Wait()
	if err != nil {
		return 0, fmt.Errorf("app %s: wait for it: %w", s.Name, err)
	}
	// Closed before finish: the spawner, which waits for the close
	// after it sent the exit, then lets go of its copies of the app's
	// output, and finish's wait for that output ends; it may also block
	// until the pod ends (endOfApp), and the spawner need not wait for
	// that.
	_ = c.Close()
	return o.finish(out, exitInfo{Code: f.Code, Signal: f.Signal}), nil
}
