//go:build !linux

package mountplan

import (
	"context"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Kernel is the Mounter that calls mount(2); it only works on Linux.
type Kernel struct{}

var _ Unmounter = Kernel{}

func notImplemented(what string) error {
	return errdefs.Newf(errdefs.ErrNotImplemented, "%s: only supported on linux", what)
}

// Mount fails: mounting is Linux-only.
func (Kernel) Mount(context.Context, Mount) error { return notImplemented("mount") }

// Unmount fails: mounting is Linux-only.
func (Kernel) Unmount(context.Context, string) error { return notImplemented("unmount") }

// MountPointsUnder fails: there is no mountinfo.
func MountPointsUnder(context.Context, string) ([]string, error) {
	return nil, notImplemented("list mounts")
}

// UnmountAll fails: mounting is Linux-only.
func UnmountAll(context.Context, string) error { return notImplemented("unmount all") }

// ProbeOverlay fails: overlayfs is Linux-only.
func ProbeOverlay(context.Context, string, ...string) error { return notImplemented("probe overlayfs") }

// CopyTree fails: the copy keeps Linux metadata.
func CopyTree(context.Context, string, string) error { return notImplemented("copy tree") }

// UnmountPod fails: mounting is Linux-only.
func UnmountPod(context.Context, string) error { return notImplemented("unmount pod") }

// ErrMountInside is the class of RemoveTree's error when it meets a mount
// point.
var ErrMountInside = errdefs.Newf(errdefs.ErrFailedPrecondition, "something is mounted inside")

// RemoveTree fails: it relies on openat2(2).
func RemoveTree(string) error { return notImplemented("remove tree") }
