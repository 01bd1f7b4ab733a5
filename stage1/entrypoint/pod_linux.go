package entrypoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/proctree"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// podPID returns the pid of the pod's systemd, the only child of the
// systemd-nspawn process in the pod's ppid file, after checking that its
// root is the pod's stage1 rootfs. A pod that is not running is an
// errdefs.ErrNotFound.
func podPID(podDir string) (int, error) {
	ppid, err := readInt(filepath.Join(podDir, stage1abi.PPIDFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errdefs.NotFound("pod has not started: no %s file", stage1abi.PPIDFile)
	}
	if err != nil {
		return 0, err
	}
	kids, err := proctree.Children(ppid)
	if err != nil {
		return 0, errdefs.With(errdefs.ErrNotFound, fmt.Errorf("systemd-nspawn (pid %d) is not running: %w", ppid, err))
	}
	if len(kids) != 1 {
		return 0, errdefs.NotFound("systemd-nspawn (pid %d) has %d children, not the pod's one", ppid, len(kids))
	}
	if err := checkPodRoot(kids[0], filepath.Join(podDir, stage1abi.Stage1RootfsRel)); err != nil {
		return 0, err
	}
	return kids[0], nil
}

// checkPodRoot checks that /proc/PID/root is the stage1 rootfs (same
// device and inode), so that a stale or recycled pid is never used.
func checkPodRoot(pid int, stage1Rootfs string) error {
	var got, want unix.Stat_t
	if err := unix.Stat(filepath.Join("/proc", strconv.Itoa(pid), "root"), &got); err != nil {
		return errdefs.With(errdefs.ErrNotFound, fmt.Errorf("pod process %d is not running: %w", pid, err))
	}
	if err := unix.Stat(stage1Rootfs, &want); err != nil {
		return &os.PathError{Op: "stat", Path: stage1Rootfs, Err: err}
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		return errdefs.NotFound("process %d is not this pod's: its root is not the stage1 rootfs", pid)
	}
	return nil
}
