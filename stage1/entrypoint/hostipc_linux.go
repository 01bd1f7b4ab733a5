package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// bindHostIPC binds run's own IPC namespace (the host's, where stage0
// started it) at sdpod.HostIPCNS in the pod's root, for a pod run with
// --ipc=parent, before systemd-nspawn starts: systemd-nspawn takes the
// root's mounts into the container, where the app helper joins the
// namespace for every app process (sdpod.Pod.HostIPC). The pod's
// systemd stays in an IPC namespace of its own. The bind is a mount
// below the stage1 rootfs, which gc unmounts with the rest; undo does it
// at once, for a run that fails before the pod starts.
func bindHostIPC(ctx context.Context, log *slog.Logger, podDir string) (undo func(), err error) {
	target := inStage1(podDir, sdpod.HostIPCNS)
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return nil, fmt.Errorf("create the host IPC namespace's mount point: %w", err)
	}
	// A file of its own, made here: never one that was there.
	fd, err := unix.Open(target, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0o400)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: target, Err: err}
	}
	_ = unix.Close(fd)
	const self = "/proc/thread-self/ns/ipc"
	log.DebugContext(ctx, "bind the host's IPC namespace into the pod", "source", self, "target", target)
	if err := unix.Mount(self, target, "", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(target)
		return nil, &os.PathError{Op: "bind " + self, Path: target, Err: err}
	}
	return func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			log.WarnContext(ctx, "unmount the host's IPC namespace from the pod", "path", target, "err", err)
		}
		_ = os.Remove(target)
	}, nil
}
