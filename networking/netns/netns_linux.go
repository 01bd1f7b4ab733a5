package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// New creates a network namespace, pins it at path with a bind mount, and
// brings its loopback interface up. path must not exist; its directory is
// created (0755) when missing. On failure nothing is left behind.
func New(ctx context.Context, path string) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create netns directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o444) //nolint:gosec // G304: the bind-mount target of the namespace
	if err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = Remove(path)
		}
	}()

	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread leaves the host's namespace, so the
		// runtime must discard it when this goroutine returns.
		runtime.LockOSThread()
		errc <- newOnThisThread(path)
	}()
	select {
	case err = <-errc:
		return err
	case <-ctx.Done():
		// The goroutine still finishes; the deferred Remove undoes its
		// mount, so its outcome no longer matters.
		<-errc //nolint:errcheck // see above
		return ctx.Err()
	}
}

func newOnThisThread(path string) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return os.NewSyscallError("unshare CLONE_NEWNET", err)
	}
	src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		return &os.PathError{Op: "bind mount netns", Path: path, Err: err}
	}
	return loopbackUp()
}

// loopbackUp sets IFF_UP on lo of the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer func() { _ = unix.Close(fd) }()
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCGIFFLAGS lo", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCSIFFLAGS lo", err)
	}
	return nil
}

// Remove unmounts the namespace pinned at path and deletes the file. It is
// idempotent: a missing file, or a file that is no longer a mount point, is
// not an error. The namespace itself goes away with its last user.
func Remove(path string) error {
	for {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "unmount netns", Path: path, Err: err}
		}
		break
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns file: %w", err)
	}
	return nil
}

// IsNetNS reports whether path is a pinned network namespace (a file on
// nsfs). A missing path is (false, nil): the pin is gone, as after a reboot.
func IsNetNS(path string) (bool, error) {
	var st unix.Statfs_t
	for {
		err := unix.Statfs(path, &st)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		if err != nil {
			return false, &os.PathError{Op: "statfs", Path: path, Err: err}
		}
		break
	}
	if st.Type != unix.NSFS_MAGIC {
		return false, nil
	}
	// nsfs also holds other namespace types; make sure it is a network one.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer func() { _ = unix.Close(fd) }()
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return false, os.NewSyscallError("ioctl NS_GET_NSTYPE", err)
	}
	return typ == unix.CLONE_NEWNET, nil
}

// Do runs fn on an OS thread that has joined the network namespace pinned
// at path, and returns fn's error. Sockets fn creates stay in that
// namespace and may be used from any goroutine after Do returns. fn must
// not start goroutines that expect to be in the namespace.
func Do(ctx context.Context, path string, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open netns", Path: path, Err: err}
	}
	defer func() { _ = unix.Close(fd) }()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: see New.
		runtime.LockOSThread()
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- &os.PathError{Op: "setns", Path: path, Err: err}
			return
		}
		errc <- fn()
	}()
	return <-errc
}
