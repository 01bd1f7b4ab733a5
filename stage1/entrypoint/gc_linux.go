package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1/nspawn"
)

// GC implements the gc entrypoint, from the directory of an exited pod.
// It may run any number of times:
//
//   - mounts under the stage1 rootfs other than stage0's own (the stage1
//     and app rootfs overlays) are lazily unmounted, deepest first. There
//     should be none: the pod's mounts live in its own mount namespace;
//   - a pod systemd-machined registered is terminated through machined;
//   - processes left in the pod's cgroups are killed and the cgroups
//     removed (only made when the pod is not registered);
//   - systemd-nspawn's propagation directory for the pod and the empty
//     volume directories are removed;
//   - the host's link to the pod's journal (/var/log/journal/MACHINE-ID)
//     is removed; the journal itself goes with the pod directory;
//   - the pod's network is torn down (networking.Teardown: CNI DEL, port
//     claims, namespace pin), also after a kill or a reboot.
func GC(ctx context.Context, log *slog.Logger, args abiargs.GCArgs) error {
	log = log.With("pod", args.UUID)
	podDir, err := unix.Getwd()
	if err != nil {
		return fmt.Errorf("get pod directory: %w", err)
	}
	root := filepath.Join(podDir, stage1abi.Stage1RootfsRel)
	mps, err := mountplan.MountPointsUnder(ctx, root)
	if err != nil {
		return err
	}
	var errs []error
	for _, mp := range mps {
		if mp == root || isAppRootfs(root, mp) {
			continue
		}
		log.DebugContext(ctx, "unmount leftover", "path", mp)
		if err := unix.Unmount(mp, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, &os.PathError{Op: "umount", Path: mp, Err: err})
		}
	}
	if err := endMachine(ctx, log, podDir, args.UUID); err != nil {
		errs = append(errs, err)
	}
	if err := removePodCgroups(args.UUID); err != nil {
		errs = append(errs, err)
	}
	if err := removeAppCgroups(podDir, args.UUID); err != nil {
		errs = append(errs, err)
	}
	if err := teardownNetwork(ctx, log, podDir); err != nil {
		errs = append(errs, err)
	}
	if err := unlinkJournal(args.UUID); err != nil {
		errs = append(errs, err)
	}
	prop := filepath.Join("/run/systemd/nspawn/propagate", nspawn.MachineName(args.UUID))
	if err := os.RemoveAll(prop); err != nil {
		errs = append(errs, fmt.Errorf("remove propagation directory: %w", err))
	}
	if err := os.RemoveAll(filepath.Join(podDir, stage1abi.EmptyVolumesDir)); err != nil {
		errs = append(errs, fmt.Errorf("remove empty volumes: %w", err))
	}
	return errors.Join(errs...)
}

// endMachine asks systemd-machined to end the pod's machine when run
// registered it (sdpod.Isolation.Registered): after a kill of run the
// container may still run in machined's scope, which no cgroup of nscn's
// holds.
func endMachine(ctx context.Context, log *slog.Logger, podDir, uuid string) error {
	iso, err := loadIsolation(podDir, uuid)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !iso.Registered {
		return nil
	}
	log.DebugContext(ctx, "terminate machine", "machine", nspawn.MachineName(uuid))
	return terminateMachine(ctx, nspawn.MachineName(uuid))
}

// isAppRootfs reports whether mp is exactly some opt/stage2/APP/rootfs of
// the stage1 rootfs root: stage0's overlay, which stage0 unmounts.
func isAppRootfs(root, mp string) bool {
	rel, ok := strings.CutPrefix(mp, filepath.Join(root, sdpod.Stage2Dir)+"/")
	if !ok {
		return false
	}
	parts := strings.Split(rel, "/")
	return len(parts) == 2 && parts[1] == "rootfs"
}
