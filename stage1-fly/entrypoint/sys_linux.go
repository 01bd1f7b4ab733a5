package entrypoint

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// cloexecInherited marks every descriptor above 2 close-on-exec, so that
// only what a child is given explicitly reaches it. Descriptors the Go
// runtime opens already are; this catches those inherited from stage0.
// One close_range(2) does it (Linux 5.11; fly needs 5.12); a kernel or
// seccomp filter that refuses it gets the walk over /proc/self/fd.
func cloexecInherited() error {
	if unix.CloseRange(3, math.MaxUint, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return nil
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		// The directory descriptor ReadDir used is closed by now: EBADF.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// exitStatus turns a wait status into the status run reports:
// the exit code, or SignalStatusBase plus the signal number.
func exitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return stage1abi.SignalStatusBase + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// rootFS is an fs.FS over an app rootfs that treats it as hostile: every
// path is resolved in-root without magic links (inroot), and only regular
// files and directories can be opened, without blocking (no FIFO can
// stall the pod thread).
type rootFS struct{ root *os.File }

var _ fs.StatFS = rootFS{}

// Open opens name, an fs.FS path relative to the rootfs.
func (r rootFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := inroot.Open(r.root, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() && !st.IsDir() {
		_ = f.Close()
		return nil, &fs.PathError{Op: "open", Path: "/" + name, Err: errors.New("not a regular file or directory")}
	}
	return f, nil
}

// Stat stats name without opening it for reading.
func (r rootFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	f, err := inroot.Open(r.root, name, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return f.Stat()
}

// openPodRoot opens /proc/pid/root and checks that it is the app's rootfs
// (hostRootfs, as the host sees it): same device and inode. That guards
// enter and stop against a stale pid file whose pid was reused.
func openPodRoot(pid int, hostRootfs string) (*os.File, error) {
	f, err := os.OpenFile(path.Join("/proc", strconv.Itoa(pid), "root"), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.With(errdefs.ErrNotFound, fmt.Errorf("pod %d is not running: %w", pid, err))
		}
		return nil, fmt.Errorf("open root of pod %d: %w", pid, err)
	}
	var got, want unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &got); err != nil {
		_ = f.Close()
		return nil, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if err := unix.Stat(hostRootfs, &want); err != nil {
		_ = f.Close()
		return nil, &os.PathError{Op: "stat", Path: hostRootfs, Err: err}
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		_ = f.Close()
		return nil, errdefs.NotFound("process %d is not this pod's process: its root is not the app's rootfs", pid)
	}
	return f, nil
}
