package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// GCConfig is the input of GC.
type GCConfig struct {
	Args abiargs.GCArgs
	Log  *slog.Logger
}

// GC implements the gc entrypoint, from the directory of an exited pod. It
// removes what fly left there, and may run any number of times:
//
//   - the empty-volume directories (stage1abi.EmptyVolumesDir) are
//     removed, without ever deleting through a mount point
//     (mountplan.RemoveTree);
//   - only if something is still mounted on or under them does it read
//     /proc/self/mountinfo: mounts there and below an app rootfs
//     (stage1/rootfs/opt/stage2/*/rootfs/…) are lazily unmounted, deepest
//     first, and the removal is retried. There should be none: fly mounts
//     only in the pod's private mount namespace, which died with the pod.
//     The app rootfs mounts themselves belong to stage0 and stay, and
//     stage0's removal of the pod directory stops at, then unmounts, any
//     other mount.
//
// So a gc costs the same however many mounts, of however many other pods,
// the host has.
func GC(ctx context.Context, cfg GCConfig) error {
	log := cfg.Log.With("pod", cfg.Args.UUID)
	podDir, err := unix.Getwd()
	if err != nil {
		return fmt.Errorf("get pod directory: %w", err)
	}
	vols := filepath.Join(podDir, stage1abi.EmptyVolumesDir)
	log.DebugContext(ctx, "remove empty volumes", "path", vols)
	err = mountplan.RemoveTree(vols)
	if errors.Is(err, mountplan.ErrMountInside) {
		log.DebugContext(ctx, "a volume is still mounted, unmounting leftovers", "err", err)
		if err := unmountLeftovers(ctx, log, podDir); err != nil {
			return err
		}
		err = mountplan.RemoveTree(vols)
	}
	if err != nil {
		return fmt.Errorf("remove empty volumes: %w", err)
	}
	return nil
}

// unmountLeftovers unmounts what the mount table lists under the empty
// volumes and below the app rootfses of the pod, and checks that nothing
// is left on the volumes.
func unmountLeftovers(ctx context.Context, log *slog.Logger, podDir string) error {
	left, err := leftoverMounts(podDir)
	if err != nil {
		return err
	}
	for _, m := range left {
		log.DebugContext(ctx, "unmount leftover", "path", m)
		err := unix.Unmount(m, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount leftover mount: %w", &os.PathError{Op: "umount", Path: m, Err: err})
		}
	}
	vols := filepath.Join(podDir, stage1abi.EmptyVolumesDir)
	left, err = leftoverMounts(podDir)
	if err != nil {
		return err
	}
	for _, m := range left {
		if under(m, vols) {
			return errdefs.FailedPrecondition("%s is still mounted; not removing the empty volumes", m)
		}
	}
	return nil
}

// leftoverMounts lists the mount points fly may have left under podDir,
// deepest first.
func leftoverMounts(podDir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer func() { _ = f.Close() }()
	infos, err := mountplan.ParseMountInfo(f)
	if err != nil {
		return nil, err
	}
	// The parent of every app's stage2 directory: stage1/rootfs/opt/stage2.
	stage2 := filepath.Join(podDir, filepath.Dir(stage1abi.Stage2Dir("app")))
	vols := filepath.Join(podDir, stage1abi.EmptyVolumesDir)
	var out []string
	for _, in := range infos {
		mp := in.MountPoint
		if under(mp, vols) || belowAppRootfs(mp, stage2) {
			out = append(out, mp)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.Count(out[i], "/") > strings.Count(out[j], "/")
	})
	return out, nil
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// belowAppRootfs reports whether mp is strictly inside some
// stage2/APP/rootfs directory.
func belowAppRootfs(mp, stage2 string) bool {
	rel, ok := strings.CutPrefix(mp, stage2+"/")
	if !ok {
		return false
	}
	parts := strings.SplitN(rel, "/", 3)
	return len(parts) == 3 && parts[1] == "rootfs" && parts[2] != ""
}
