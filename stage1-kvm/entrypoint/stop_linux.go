package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/podroot"
)

// Stop implements the stop entrypoint, from the pod directory: it asks
// the guest's agent to halt the pod (the pod's systemd stops the apps,
// which record their statuses, and powers the guest off), or with --force
// records that the pod was killed and kills qemu. A pod that is not
// running is not an error.
func Stop(ctx context.Context, log *slog.Logger, args abiargs.StopArgs) error {
	log = log.With("pod", args.UUID)
	podDir, err := unix.Getwd()
	if err != nil {
		return fmt.Errorf("get pod directory: %w", err)
	}
	pid, alive := livePID(podDir, QemuPIDFile, "qemu")
	if !alive {
		log.DebugContext(ctx, "pod is not running")
		return nil
	}
	if !args.Force {
		err := sendHalt(podDir, func() bool { _, ok := livePID(podDir, QemuPIDFile, "qemu"); return ok })
		if err == nil {
			return nil
		}
		log.WarnContext(ctx, "the guest's agent did not take the halt request; killing the guest", "err", err)
	}
	if err := podroot.MarkKilled(podDir); err != nil {
		// The kill goes ahead: a pod must not be able to make
		// itself unkillable; its apps then get no status from run.
		log.WarnContext(ctx, "record the kill in the pod", "err", err)
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill qemu %d: %w", pid, &os.SyscallError{Syscall: "kill", Err: err})
	}
	return nil
}

// livePID reads a pid file of the pod and says whether that process
// still runs the program named want (its executable's base name holds
// want), so that a recycled pid is never signalled.
func livePID(podDir, file, want string) (int, bool) {
	pid, err := readInt(filepath.Join(podDir, file))
	if err != nil || pid <= 1 {
		return 0, false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || !strings.Contains(filepath.Base(exe), want) {
		return 0, false
	}
	return pid, true
}
