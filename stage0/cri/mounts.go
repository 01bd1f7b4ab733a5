package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	securejoin "github.com/cyphar/filepath-securejoin"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/prepare"
)

// MountsAnnotation is a container app's annotation: its CRI mounts as the
// client gave them (mountRecord), for ContainerStatus.
const MountsAnnotation = "nscn.io/cri/mounts"

// mountRecord is one CRI mount as ContainerStatus reports it.
type mountRecord struct {
	ContainerPath     string `json:"containerPath"`
	HostPath          string `json:"hostPath,omitempty"`
	Readonly          bool   `json:"readonly,omitempty"`
	RecursiveReadOnly bool   `json:"recursiveReadOnly,omitempty"`
	SelinuxRelabel    bool   `json:"selinuxRelabel,omitempty"`
	Propagation       int32  `json:"propagation,omitempty"`
	Image             string `json:"image,omitempty"`    // an image volume's image, as named
	ImageRef          string `json:"imageRef,omitempty"` // and its ID
	ImageSubPath      string `json:"imageSubPath,omitempty"`
}

// mountVolume names the app volume of the container's i-th mount.
func mountVolume(i int) string { return fmt.Sprintf("cri-mount-%d", i) }

// criPropagation maps the CRI's propagation onto the stage1's.
var criPropagation = map[runtimeapi.MountPropagation]string{
	runtimeapi.MountPropagation_PROPAGATION_PRIVATE:           stage1abi.PropagationPrivate,
	runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER: stage1abi.PropagationSlave,
	runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:     stage1abi.PropagationShared,
}

// addMounts maps CreateContainer's mounts onto app: each is an app volume
// of kind host (appc's appVolume: the container's own, not the pod's),
// bound recursively, with the read-only and propagation options appc
// lacks in the app's stage1abi.AnnotationMountOptions, and recorded for
// ContainerStatus in MountsAnnotation. The host paths are the client's
// decision, as for any CRI runtime: a symlink is resolved on the host, a
// missing path is created as a directory (as containerd and dockershim
// do). selinux_relabel is ignored (these hosts have no SELinux). An
// image volume's source is the image's rendered tree in the store.
func (s *Server) addMounts(ctx context.Context, app *prepare.App, mounts []*runtimeapi.Mount) error {
	if len(mounts) == 0 {
		return nil
	}
	var opts []stage1abi.MountOption
	var recs []mountRecord
	for i, m := range mounts {
		rec := mountRecord{
			ContainerPath: m.GetContainerPath(), HostPath: m.GetHostPath(), Readonly: m.GetReadonly(),
			RecursiveReadOnly: m.GetRecursiveReadOnly(), SelinuxRelabel: m.GetSelinuxRelabel(), Propagation: int32(m.GetPropagation()),
		}
		if !path.IsAbs(rec.ContainerPath) {
			return errdefs.InvalidArgument("mount %d: container path %q is not absolute", i, rec.ContainerPath)
		}
		prop, ok := criPropagation[m.GetPropagation()]
		if !ok {
			return errdefs.InvalidArgument("mount %d at %s: unknown propagation %v", i, rec.ContainerPath, m.GetPropagation())
		}
		if rec.RecursiveReadOnly {
			if !rec.Readonly {
				return errdefs.InvalidArgument("mount %d at %s: recursive_read_only needs readonly", i, rec.ContainerPath)
			}
			if prop != stage1abi.PropagationPrivate {
				return errdefs.InvalidArgument("mount %d at %s: recursive_read_only needs private propagation, not %v", i, rec.ContainerPath, m.GetPropagation())
			}
		}
		var src string
		if im := m.GetImage(); im.GetImage() != "" {
			if rec.HostPath != "" {
				return errdefs.InvalidArgument("mount %d at %s: names both a host path and an image", i, rec.ContainerPath)
			}
			if !rec.Readonly {
				return errdefs.InvalidArgument("mount %d at %s: an image volume is read-only: set readonly", i, rec.ContainerPath)
			}
			if prop != stage1abi.PropagationPrivate {
				return errdefs.InvalidArgument("mount %d at %s: an image volume is private", i, rec.ContainerPath)
			}
			p, ref, tree, err := s.imageVolume(ctx, im.GetImage(), m.GetImageSubPath())
			if err != nil {
				return fmt.Errorf("mount %d at %s: %w", i, rec.ContainerPath, err)
			}
			if !slices.Contains(app.VolumeTrees, tree) {
				app.VolumeTrees = append(app.VolumeTrees, tree)
			}
			src, rec.Image, rec.ImageRef, rec.ImageSubPath = p, im.GetImage(), ref, m.GetImageSubPath()
			// An image's tree is the store's: never writable, below
			// it neither.
			rec.Readonly, rec.RecursiveReadOnly = true, true
		} else {
			p, err := hostSource(rec.HostPath)
			if err != nil {
				return fmt.Errorf("mount %d at %s: %w", i, rec.ContainerPath, err)
			}
			src = p
		}
		name := mountVolume(i)
		opt := stage1abi.MountOption{Volume: name, Propagation: prop}
		switch {
		case rec.RecursiveReadOnly:
			opt.ReadOnly = stage1abi.ReadOnlyRecursive
		case rec.Readonly:
			opt.ReadOnly = stage1abi.ReadOnlyTop
		}
		ro, recursive := rec.Readonly, true
		app.Mounts = append(app.Mounts, schema.Mount{
			Volume: *types.MustACName(name), Path: rec.ContainerPath,
			AppVolume: &types.Volume{Name: *types.MustACName(name), Kind: "host", Source: src, ReadOnly: &ro, Recursive: &recursive},
		})
		opts = append(opts, opt)
		recs = append(recs, rec)
	}
	ob, err := json.Marshal(opts)
	if err != nil {
		return err
	}
	rb, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	app.Annotations = append(app.Annotations,
		types.Annotation{Name: *types.MustACIdentifier(stage1abi.AnnotationMountOptions), Value: string(ob)},
		types.Annotation{Name: *types.MustACIdentifier(MountsAnnotation), Value: string(rb)})
	return nil
}

// hostSource is the host path a CRI mount binds: absolute, symlinks
// resolved on the host (the stage1 refuses a source that passes through
// one, as appc asks), created as a directory when missing.
func hostSource(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", errdefs.InvalidArgument("host path %q is not absolute", p)
	}
	if strings.ContainsRune(p, 0) {
		return "", errdefs.InvalidArgument("host path %q holds a NUL", p)
	}
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", fmt.Errorf("create host path: %w", err)
		}
	}
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("host path: %w", err)
	}
	return r, nil
}

// imageVolume is the rendered rootfs, in the store, of the pulled image
// ref names (or its directory sub, resolved in it: the image's symlinks
// cannot leave it), the image's ID and the tree's key, which the pod
// holds (prepare.App.VolumeTrees).
func (s *Server) imageVolume(ctx context.Context, ref, sub string) (string, string, string, error) {
	im, err := s.find(ctx, ref)
	if err != nil {
		return "", "", "", err
	}
	if im == nil {
		return "", "", "", errdefs.NotFound("image %s is not pulled", ref)
	}
	t, err := s.store.Trees.Render(ctx, im.newest.ID)
	if err != nil {
		return "", "", "", fmt.Errorf("render image %s: %w", ref, err)
	}
	// The stage1 refuses a host source through a symlink: the data
	// directory may be reached through one.
	p, err := filepath.EvalSymlinks(t.Rootfs)
	if err != nil {
		return "", "", "", fmt.Errorf("image %s: %w", ref, err)
	}
	if sub != "" {
		if p, err = securejoin.SecureJoin(p, sub); err != nil {
			return "", "", "", errdefs.InvalidArgument("image %s: sub-path %q: %w", ref, sub, err)
		}
		if _, err := os.Stat(p); err != nil {
			return "", "", "", errdefs.NotFound("image %s has no %q: %w", ref, sub, err)
		}
	}
	return p, im.id, t.Key, nil
}

// criMounts are the container's mounts for ContainerStatus.
func (c *container) criMounts() []*runtimeapi.Mount {
	for _, ra := range c.sb.pm.Apps {
		if ra.Name.String() != c.app {
			continue
		}
		v, ok := ra.Annotations.Get(MountsAnnotation)
		if !ok {
			return nil
		}
		var recs []mountRecord
		if json.Unmarshal([]byte(v), &recs) != nil {
			return nil
		}
		out := make([]*runtimeapi.Mount, 0, len(recs))
		for _, r := range recs {
			m := &runtimeapi.Mount{
				ContainerPath: r.ContainerPath, HostPath: r.HostPath, Readonly: r.Readonly,
				RecursiveReadOnly: r.RecursiveReadOnly, SelinuxRelabel: r.SelinuxRelabel,
				Propagation: runtimeapi.MountPropagation(r.Propagation), ImageSubPath: r.ImageSubPath,
			}
			if r.Image != "" {
				m.Image = &runtimeapi.ImageSpec{Image: r.Image, ImageRef: r.ImageRef}
			}
			out = append(out, m)
		}
		return out
	}
	return nil
}

// refuseDevices refuses a container's devices (Unimplemented) rather
// than start it without them: an app's /dev holds the appc set only.
func refuseDevices(devs []*runtimeapi.Device) error {
	if len(devs) == 0 {
		return nil
	}
	return errdefs.Newf(errdefs.ErrNotImplemented, "container devices (%s, …) are not supported yet", devs[0].GetHostPath())
}

// runtimeHandlers are the runtime handlers Status advertises, with what
// each supports: nspawn (also the default, "") mounts recursively
// read-only (mount_setattr(2), AT_RECURSIVE).
func runtimeHandlers() []*runtimeapi.RuntimeHandler {
	return []*runtimeapi.RuntimeHandler{
		{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true}},
		{Name: "nspawn", Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true}},
		{Name: "kvm", Features: &runtimeapi.RuntimeHandlerFeatures{}},
	}
}
