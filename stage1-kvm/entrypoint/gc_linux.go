package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// GC implements the gc entrypoint, from the directory of an exited pod.
// It can run any number of times:
//
//   - a qemu or virtiofsd of the pod still running (run was killed and
//     its children with it, normally; after a crash of the host side
//     they may be left) is killed;
//   - the pod's network is torn down (CNI DEL, tap, port claims,
//     namespace pin);
//   - the flavor's state directory (sockets, pids) and the empty volumes
//     are removed; the console log is kept for nscn's users to read.
//
// No host mount is left to undo: the binds the guest sees exist only in
// virtiofsd's mount namespace.
func GC(ctx context.Context, log *slog.Logger, args abiargs.GCArgs) error {
	log = log.With("pod", args.UUID)
	podDir, err := unix.Getwd()
	if err != nil {
		return fmt.Errorf("get pod directory: %w", err)
	}
	var errs []error
	for _, p := range []struct{ file, exe string }{{QemuPIDFile, "qemu"}, {VirtiofsdPIDFile, "virtiofsd"}} {
		pid, alive := livePID(podDir, p.file, p.exe)
		if !alive {
			continue
		}
		log.DebugContext(ctx, "kill leftover", "program", p.exe, "pid", pid)
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %s %d: %w", p.exe, pid, err))
			continue
		}
		for i := 0; i < 100; i++ {
			if _, alive := livePID(podDir, p.file, p.exe); !alive {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := teardownNetwork(ctx, log, podDir); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []string{ControlSocket, EnterSocket, StdinSocket, RootSocket, QemuPIDFile, VirtiofsdPIDFile} {
		if err := os.Remove(filepath.Join(podDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(podDir, stage1abi.EmptyVolumesDir)); err != nil {
		errs = append(errs, fmt.Errorf("remove empty volumes: %w", err))
	}
	return errors.Join(errs...)
}
