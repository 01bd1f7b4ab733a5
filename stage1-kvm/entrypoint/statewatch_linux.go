package entrypoint

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// stateWatch is an inotify watch on the guest's state directory (in the
// pod's stage1 rootfs, as virtiofsd writes it on the host): run learns
// at once that the guest made GuestEndedFile or GuestReadyFile, instead
// of at its next 50 ms tick (25 ms later on average, on every pod's
// end). The tick stays: it is what run relies on should the watch miss
// something, since the guest's root can rename the directory away.
type stateWatch struct {
	f *os.File
	// C receives a value after one or more entries of the directory
	// were made or renamed into it; the events themselves are dropped.
	C <-chan struct{}
}

// watchState watches dir for entries made (IN_CREATE, a FIFO's mknod)
// or renamed into it (IN_MOVED_TO, the app helper's atomic writes). dir
// must be a directory, not a symlink: the guest could have planted one.
func watchState(dir string) (*stateWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch the guest's state: %w", &os.SyscallError{Syscall: "inotify_init1", Err: err})
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ONLYDIR|unix.IN_DONT_FOLLOW); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("watch the guest's state: %w", &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err})
	}
	// Non-blocking, so that the runtime's poller reads it and Close ends
	// a read in progress.
	f := os.NewFile(uintptr(fd), "inotify")
	c := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				// Closed, or broken: the tick still sees the files.
				return
			}
			select {
			case c <- struct{}{}:
			default: // one pending wake-up is enough
			}
		}
	}()
	return &stateWatch{f: f, C: c}, nil
}

// Close ends the watch.
func (w *stateWatch) Close() error { return w.f.Close() }
