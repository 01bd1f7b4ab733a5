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
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/fly"
)

// StopConfig is the input of Stop.
type StopConfig struct {
	Args abiargs.StopArgs
	Log  *slog.Logger
}

// Stop implements the stop entrypoint, from the pod directory: it sends
// SIGTERM (SIGKILL with --force) to run, through the pod thread the pid
// file names. run forwards SIGTERM to the app and runs post-stop when the
// app has exited; SIGKILL kills run, which takes the app down with it
// (Pdeathsig), so post-stop does not run and no status is recorded.
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
	pm, err := appspec.LoadPod(filepath.Join(podDir, stage1abi.PodManifestFile))
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
	pidfd, sendFlags, err := openPidfd(pid)
	pinned := err == nil
	switch {
	case errors.Is(err, unix.ESRCH):
		log.DebugContext(ctx, "pod is not running: no such process", "pid", pid)
		return nil
	case pinned:
		defer func() { _ = unix.Close(pidfd) }()
	case !errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("open pod %d: %w", pid, &os.SyscallError{Syscall: "pidfd_open", Err: err})
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
	log.DebugContext(ctx, "signal pod", "pid", pid, "signal", sig.String())
	if pinned {
		err = unix.PidfdSendSignal(pidfd, sig, nil, sendFlags)
	} else {
		err = unix.Kill(pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("signal pod %d: %w", pid, err)
	}
	return nil
}

// pidfdThread is PIDFD_THREAD (Linux 6.9): pidfd_open of a thread that
// does not lead its process.
const pidfdThread = unix.O_EXCL

// openPidfd pins pid, which in the pid file of a fly pod is the id of
// run's pod thread rather than of a process: pidfd_open refuses such a
// thread (EINVAL before Linux 6.9, ENOENT since) unless asked for a
// thread pidfd, and a signal sent
// through a thread pidfd goes to the thread unless flags say otherwise.
// It returns the pidfd and the pidfd_send_signal flags that signal the
// whole process, as kill(2) does. A kernel older than 6.9 has no thread
// pidfds: openPidfd then fails with ENOSYS, and the caller signals
// unpinned, with kill(2), which takes a thread id as well.
func openPidfd(pid int) (fd, sendFlags int, err error) {
	fd, err = unix.PidfdOpen(pid, 0)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fd, 0, err
	}
	fd, err = unix.PidfdOpen(pid, pidfdThread)
	if errors.Is(err, unix.EINVAL) {
		return -1, 0, unix.ENOSYS
	}
	return fd, unix.PIDFD_SIGNAL_THREAD_GROUP, err
}
