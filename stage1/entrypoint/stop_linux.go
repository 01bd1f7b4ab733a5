package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/podroot"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// sigHalt is SIGRTMIN+3, which makes systemd start halt.target: the apps
// are stopped (SIGTERM, then SIGKILL after their TimeoutStopSec=) and
// their statuses recorded.
const sigHalt = unix.Signal(37)

// Stop implements the stop entrypoint, from the pod directory: it asks the
// pod's systemd to halt the pod, or with --force records that the pod was
// killed and sends its systemd SIGKILL, which kills every process of the
// pod. A pod that is not running is not an error.
func Stop(ctx context.Context, log *slog.Logger, args abiargs.StopArgs) error {
	log = log.With("pod", args.UUID)
	podDir, err := unix.Getwd()
	if err != nil {
		return fmt.Errorf("get pod directory: %w", err)
	}
	pid, err := podPID(podDir)
	if errors.Is(err, errdefs.ErrNotFound) {
		log.DebugContext(ctx, "pod is not running", "reason", err)
		return nil
	}
	if err != nil {
		return err
	}
	sig := sigHalt
	if args.Force {
		if err := podroot.MarkKilled(podDir); err != nil {
			// The kill goes ahead: a pod must not be able to make
			// itself unkillable; its apps then get no status from run.
			log.WarnContext(ctx, "record the kill in the pod", "err", err)
		}
		sig = unix.SIGKILL
	}
	log.DebugContext(ctx, "signal the pod's systemd", "pid", pid, "signal", sig.String(), "marker", sdpod.KilledFile)
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal pod process %d: %w", pid, &os.SyscallError{Syscall: "kill", Err: err})
	}
	return nil
}
