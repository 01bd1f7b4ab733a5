package apphelper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// sealLockDir is locked (flock) to serialize sealRoot between the apps'
// helpers, which the pod's systemd starts at the same time. The
// directory, not a file in it: an open with O_CREAT takes write access to
// the root's mount even when the file exists, and a remount read-only
// fails while anyone holds it.
var sealLockDir = filepath.Dir(sdpod.FirstFailureFile)

// sealTries bounds the attempts of the read-only remount, which fails with
// EBUSY while a process of the pod (the pod's systemd writing a file of
// its own) has a file of the root open for writing.
const sealTries = 100

// sealRoot makes the pod's root (the stage1 rootfs) read-only in the
// pod's mount namespace, but for sdpod.WritableDirs, each bound onto
// itself first so that it stays writable. It runs in the first app
// helper that prepares an app, before any app process exists, and does
// nothing in the others. The root mount only: the apps' rootfs, the
// volumes and systemd-nspawn's own mounts below it keep their flags.
//
// Apps cannot reach the pod's root anyway (pivotInto); the seal keeps
// the stage1's files as the image had them against whatever else runs in
// the pod. systemd-nspawn's --read-only does not do: it makes every
// mount below the root read-only too, and the binds from it with them.
func sealRoot(ctx context.Context, log *slog.Logger) error {
	lock, err := os.OpenFile(sealLockDir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0) //nolint:gosec // G304: a fixed directory of the pod's root
	if err != nil {
		return fmt.Errorf("seal the pod's root: %w", err)
	}
	defer func() { _ = lock.Close() }()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("seal the pod's root: %w", &os.SyscallError{Syscall: "flock", Err: err})
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return &os.PathError{Op: "statfs", Path: "/", Err: err}
	}
	if st.Flags&unix.ST_RDONLY != 0 {
		return nil // sealed by another app's helper
	}
	for _, d := range sdpod.WritableDirs {
		if d == sdpod.VolumesDir && emptyDir(d) {
			continue // no empty volume: nothing to keep writable
		}
		log.DebugContext(ctx, "bind writable dir onto itself", "dir", d)
		if err := unix.Mount(d, d, "", unix.MS_BIND, ""); err != nil {
			return &os.PathError{Op: "bind onto itself", Path: d, Err: err}
		}
	}
	log.DebugContext(ctx, "make the pod's root read-only")
	for i := 1; ; i++ {
		err := unix.MountSetattr(unix.AT_FDCWD, "/", 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || i == sealTries {
			return &os.PathError{Op: "mount_setattr (rdonly)", Path: "/", Err: err}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// emptyDir reports whether the directory d has no entries (or cannot be
// read, in which case there is nothing of it to keep writable either).
func emptyDir(d string) bool {
	f, err := os.Open(d) //nolint:gosec // G304: a directory of the pod's root (sdpod.WritableDirs)
	if err != nil {
		return true
	}
	defer func() { _ = f.Close() }()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}
