package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/prepare"
)

func TestAddMounts(t *testing.T) {
	dir := t.TempDir()
	realDir := filepath.Join(dir, "real")
	if err := os.Mkdir(realDir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(realDir, link); err != nil {
		t.Fatal(err)
	}
	slave, shared := runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
	for _, tc := range []struct {
		name       string
		mount      *runtimeapi.Mount
		wantSource string
		wantRO     bool
		wantOpt    stage1abi.MountOption
		wantClass  error
	}{
		{name: "writable", mount: &runtimeapi.Mount{HostPath: realDir, ContainerPath: "/mnt"}, wantSource: realDir, wantOpt: stage1abi.MountOption{Propagation: "private"}},
		{name: "symlink resolved", mount: &runtimeapi.Mount{HostPath: link, ContainerPath: "/mnt"}, wantSource: realDir, wantOpt: stage1abi.MountOption{Propagation: "private"}},
		{name: "missing created", mount: &runtimeapi.Mount{HostPath: filepath.Join(dir, "new", "dir"), ContainerPath: "/mnt"}, wantSource: filepath.Join(dir, "new", "dir"), wantOpt: stage1abi.MountOption{Propagation: "private"}},
		{name: "read-only top", mount: &runtimeapi.Mount{HostPath: realDir, ContainerPath: "/mnt", Readonly: true, SelinuxRelabel: true}, wantSource: realDir, wantRO: true, wantOpt: stage1abi.MountOption{ReadOnly: "top", Propagation: "private"}},
		{name: "recursive read-only", mount: &runtimeapi.Mount{HostPath: realDir, ContainerPath: "/mnt", Readonly: true, RecursiveReadOnly: true}, wantSource: realDir, wantRO: true, wantOpt: stage1abi.MountOption{ReadOnly: "recursive", Propagation: "private"}},
		{name: "rslave", mount: &runtimeapi.Mount{HostPath: realDir, ContainerPath: "/mnt", Propagation: slave}, wantSource: realDir, wantOpt: stage1abi.MountOption{Propagation: "rslave"}},
		{name: "rshared", mount: &runtimeapi.Mount{HostPath: realDir, ContainerPath: "/mnt", Propagation: shared}, wantSource: realDir, wantOpt: stage1abi.MountOption{Propagation: "rshared"}},
		{name: "recursive read-only not read-only", mount: &runtimeapi.Mount{HostPath: realDir, ContainerPath: "/mnt", RecursiveReadOnly: true}, wantClass: errdefs.ErrInvalidArgument},
		{name: "recursive read-only rslave", mount: &runtimeapi.Mount{HostPath: realDir, ContainerPath: "/mnt", Readonly: true, RecursiveReadOnly: true, Propagation: slave}, wantClass: errdefs.ErrInvalidArgument},
		{name: "recursive read-only rshared", mount: &runtimeapi.Mount{HostPath: realDir, ContainerPath: "/mnt", Readonly: true, RecursiveReadOnly: true, Propagation: shared}, wantClass: errdefs.ErrInvalidArgument},
		{name: "relative container path", mount: &runtimeapi.Mount{HostPath: realDir, ContainerPath: "mnt"}, wantClass: errdefs.ErrInvalidArgument},
		{name: "relative host path", mount: &runtimeapi.Mount{HostPath: "real", ContainerPath: "/mnt"}, wantClass: errdefs.ErrInvalidArgument},
		{name: "image volume writable", mount: &runtimeapi.Mount{ContainerPath: "/img", Image: &runtimeapi.ImageSpec{Image: "example.org/a:1"}}, wantClass: errdefs.ErrInvalidArgument},
		{name: "image volume shared", mount: &runtimeapi.Mount{ContainerPath: "/img", Readonly: true, Propagation: shared, Image: &runtimeapi.ImageSpec{Image: "example.org/a:1"}}, wantClass: errdefs.ErrInvalidArgument},
		{name: "image volume and host path", mount: &runtimeapi.Mount{ContainerPath: "/img", HostPath: realDir, Readonly: true, Image: &runtimeapi.ImageSpec{Image: "example.org/a:1"}}, wantClass: errdefs.ErrInvalidArgument},
		{name: "unknown propagation", mount: &runtimeapi.Mount{HostPath: realDir, ContainerPath: "/mnt", Propagation: 7}, wantClass: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var app prepare.App
			err := (&Server{}).addMounts(context.Background(), &app, []*runtimeapi.Mount{tc.mount})
			if tc.wantClass != nil {
				if !errors.Is(err, tc.wantClass) {
					t.Fatalf("addMounts error %v, want class %v", err, tc.wantClass)
				}
				if len(app.Mounts) != 0 || len(app.Annotations) != 0 {
					t.Errorf("a refused mount changed the app: %+v", app)
				}
				return
			}
			if err != nil {
				t.Fatalf("addMounts: %v", err)
			}
			if len(app.Mounts) != 1 || app.Mounts[0].AppVolume == nil {
				t.Fatalf("app mounts = %+v, want one with an app volume", app.Mounts)
			}
			m := app.Mounts[0]
			v := m.AppVolume
			if v.Kind != "host" || v.Source != tc.wantSource || *v.ReadOnly != tc.wantRO || !*v.Recursive || m.Path != tc.mount.ContainerPath || !v.Name.Equals(m.Volume) {
				t.Errorf("mount = %+v, volume %+v; want host %s read-only %v at %s", m, v, tc.wantSource, tc.wantRO, tc.mount.ContainerPath)
			}
			if err := prepare.CheckVolume(*v); err != nil {
				t.Errorf("the volume fails prepare's check: %v", err)
			}
			ov, _ := app.Annotations.Get(stage1abi.AnnotationMountOptions)
			opts, err := stage1abi.ParseMountOptions(ov)
			if err != nil {
				t.Fatal(err)
			}
			tc.wantOpt.Volume = v.Name.String()
			if len(opts) != 1 || opts[0] != tc.wantOpt {
				t.Errorf("mount options = %+v, want %+v", opts, tc.wantOpt)
			}
			// ContainerStatus reports what the client asked for.
			c := &container{app: "c1", sb: &sandbox{pm: podWithApp(t, "c1", app)}}
			got := c.criMounts()
			if len(got) != 1 || got[0].GetHostPath() != tc.mount.HostPath || got[0].GetContainerPath() != tc.mount.ContainerPath ||
				got[0].GetReadonly() != tc.mount.Readonly || got[0].GetPropagation() != tc.mount.Propagation || got[0].GetSelinuxRelabel() != tc.mount.SelinuxRelabel {
				t.Errorf("criMounts = %v, want %v", got, tc.mount)
			}
		})
	}
}

func TestRuntimeHandlersRRO(t *testing.T) {
	for _, h := range runtimeHandlers() {
		if want := h.GetName() != "kvm"; h.GetFeatures().GetRecursiveReadOnlyMounts() != want {
			t.Errorf("handler %q: recursive read-only %v, want %v", h.GetName(), !want, want)
		}
	}
}

// podWithApp is a pod manifest with one app named name, as app holds it.
func podWithApp(t *testing.T, name string, app prepare.App) *schema.PodManifest {
	t.Helper()
	pm := schema.BlankPodManifest()
	pm.Apps = schema.AppList{{Name: *types.MustACName(name), Annotations: app.Annotations, Mounts: app.Mounts}}
	return pm
}

func TestRefuseDevices(t *testing.T) {
	if err := refuseDevices(nil); err != nil {
		t.Errorf("no devices: %v", err)
	}
	if err := refuseDevices([]*runtimeapi.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse"}}); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("a device: %v, want NotImplemented", err)
	}
}
