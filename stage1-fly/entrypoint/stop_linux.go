package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/fly"
)

// StopConfig is the input of Stop.
type StopConfig struct {
	Args fly.StopArgs
	Log  *slog.Logger
}

// Stop implements the stop entrypoint, from the pod directory: it sends
// SIGTERM (SIGKILL with --force) to the pod process named by the pid file.
// The pod process forwards SIGTERM to the app and runs post-stop when the
// app has exited; SIGKILL takes the app down with it (Pdeathsig) and skips
// post-stop.
//
// A pod that is not running — no pid file, no such process, or a process
// that is not this pod's (its root is not the app's rootfs) — is not an
// error: stop succeeds quietly, so that it is idempotent. Stage0 tells the
// user whether the pod was running; it knows from the pod lock.
func Stop(ctx context.Context, cfg StopConfig) error {
	log := cfg.Log.With("pod", cfg.Args.UUID)
	podDir, err := unix.Getwd()
	if err != nil {
		return fmt.Errorf("get pod directory: %w", err)
	}
	pm, err := fly.LoadPod(filepath.Join(podDir, stage1abi.PodManifestFile))
	if err != nil {
		return err
	}
	ra, err := fly.SingleApp(pm)
	if err != nil {
		return err
	}
	pid, err := readPID(filepath.Join(podDir, stage1abi.PIDFile))
	if errors.Is(err, fs.ErrNotExist) {
		log.DebugContext(ctx, "pod is not running: no pid file")
		return nil
	}
	if err != nil {
		return err
	}
	sig := unix.SIGTERM
	if cfg.Args.Force {
		sig = unix.SIGKILL
	}
	// Pin the process first, then check it is ours, then signal through
	// the pin: a recycled pid cannot slip in between.
	pidfd, err := unix.PidfdOpen(pid, 0)
	pinned := err == nil
	switch {
	case errors.Is(err, unix.ESRCH):
		log.DebugContext(ctx, "pod is not running: no such process", "pid", pid)
		return nil
	case pinned:
		defer func() { _ = unix.Close(pidfd) }()
	case !errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("open pod process %d: %w", pid, &os.SyscallError{Syscall: "pidfd_open", Err: err})
	}
	root, err := openPodRoot(pid, filepath.Join(podDir, stage1abi.AppRootfs(ra.Name.String())))
	if errors.Is(err, errdefs.ErrNotFound) {
		log.DebugContext(ctx, "pod is not running", "pid", pid, "reason", err)
		return nil
	}
	if err != nil {
		return err
	}
	_ = root.Close()
	log.DebugContext(ctx, "signal pod process", "pid", pid, "signal", sig.String())
	if pinned {
		err = unix.PidfdSendSignal(pidfd, sig, nil, 0)
	} else {
		err = unix.Kill(pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("signal pod process %d: %w", pid, err)
	}
	return nil
}
