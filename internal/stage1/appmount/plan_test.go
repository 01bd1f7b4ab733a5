package appmount

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

const testPodDir = "/var/lib/nscn/pods/run/6f1c0e8a-3b7d-4e0a-9c1e-2a5b4c3d2e1f"

func baseApp() *types.App {
	return &types.App{Exec: types.Exec{"/bin/app"}, User: "0", Group: "0"}
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) { t.Helper(); testutil.Golden(t, name, got) }

func TestPlanMountsGolden(t *testing.T) {
	tests := []struct {
		name string
		app  func() *types.App
		ra   func(*schema.RuntimeApp)
		vols []types.Volume
		dns  abiargs.DNSConf
		// gen are the stage1's generated resolv.conf and hosts.
		gen   [2]string
		check func(*testing.T, Plan)
	}{
		{
			name: "minimal",
			app:  baseApp,
			dns:  abiargs.DNSConf{Resolv: "default", Hosts: "default"},
		},
		{
			name: "volumes",
			app: func() *types.App {
				a := baseApp()
				a.MountPoints = []types.MountPoint{
					{Name: *types.MustACName("conf"), Path: "/etc/app", ReadOnly: true},
					{Name: *types.MustACName("cache"), Path: "/var/cache/app"},
					{Name: *types.MustACName("orphan"), Path: "/srv/orphan"},
				}
				return a
			},
			ra: func(ra *schema.RuntimeApp) {
				ra.ReadOnlyRootFS = true
				ra.Mounts = []schema.Mount{
					{Volume: *types.MustACName("data"), Path: "/data"},
					{Volume: *types.MustACName("conf"), Path: "/etc/app/"},
					{Volume: *types.MustACName("logs"), Path: "/var/log/app"},
					{Volume: *types.MustACName("cache"), Path: "/var/cache/app"},
					{Volume: *types.MustACName("cache"), Path: "/var/cache/other"},
					{Volume: *types.MustACName("inline"), Path: "/inline", AppVolume: &types.Volume{
						Name: *types.MustACName("inline"), Kind: "host", Source: "/srv/inline", ReadOnly: ptr(true),
					}},
				}
			},
			vols: []types.Volume{
				{Name: *types.MustACName("data"), Kind: "host", Source: "/srv/data/"},
				{Name: *types.MustACName("conf"), Kind: "host", Source: "/etc/app-conf", ReadOnly: ptr(false)},
				{Name: *types.MustACName("logs"), Kind: "host", Source: "/var/log/app", Recursive: ptr(false)},
				{Name: *types.MustACName("cache"), Kind: "empty", Mode: ptr("0770"), UID: ptr(1000), GID: ptr(1000)},
			},
			dns: abiargs.DNSConf{Resolv: "host", Hosts: "stage0"},
		},
		{
			// The ACE validator's shape: a mount point served by the pod
			// volume of its name, with no mount in the pod manifest.
			name: "implicit-mount",
			app: func() *types.App {
				a := baseApp()
				a.MountPoints = []types.MountPoint{
					{Name: *types.MustACName("database"), Path: "/db"},
					{Name: *types.MustACName("conf"), Path: "/etc/app", ReadOnly: true},
					{Name: *types.MustACName("orphan"), Path: "/srv/orphan"},
				}
				return a
			},
			vols: []types.Volume{
				{Name: *types.MustACName("database"), Kind: "empty", Mode: ptr("0755"), UID: ptr(0), GID: ptr(0)},
				{Name: *types.MustACName("conf"), Kind: "host", Source: "/etc/app-conf"},
			},
			dns: abiargs.DNSConf{Resolv: "default", Hosts: "default"},
		},
		{
			name: "tmp-and-etc-volumes",
			app:  baseApp,
			ra: func(ra *schema.RuntimeApp) {
				ra.Mounts = []schema.Mount{
					{Volume: *types.MustACName("tmp"), Path: "/tmp"},
					{Volume: *types.MustACName("etc"), Path: "/etc"},
				}
			},
			vols: []types.Volume{
				{Name: *types.MustACName("tmp"), Kind: "empty", Mode: ptr("1777"), UID: ptr(0), GID: ptr(0)},
				{Name: *types.MustACName("etc"), Kind: "host", Source: "/etc"},
			},
			dns: abiargs.DNSConf{Resolv: "host", Hosts: "default"},
		},
		{
			name: "generated-dns",
			app:  baseApp,
			dns:  abiargs.DNSConf{Resolv: "default", Hosts: "default"},
			gen:  [2]string{testPodDir + "/stage1/rootfs/etc/nscn-net-resolv.conf", testPodDir + "/stage1/rootfs/etc/nscn-net-hosts"},
		},
		{
			// The CRI's mounts: inline host volumes with the options appc
			// cannot say (stage1abi.AnnotationMountOptions).
			name: "mount-options",
			app:  baseApp,
			ra: func(ra *schema.RuntimeApp) {
				inline := func(name, src string, ro bool) *types.Volume {
					return &types.Volume{Name: *types.MustACName(name), Kind: "host", Source: src, ReadOnly: ptr(ro)}
				}
				ra.Mounts = []schema.Mount{
					{Volume: *types.MustACName("m0"), Path: "/top", AppVolume: inline("m0", "/srv/top", true)},
					{Volume: *types.MustACName("m1"), Path: "/rro", AppVolume: inline("m1", "/srv/rro", true)},
					{Volume: *types.MustACName("m2"), Path: "/shared", AppVolume: inline("m2", "/srv/shared", false)},
					{Volume: *types.MustACName("m3"), Path: "/slave", AppVolume: inline("m3", "/srv/slave", false)},
					{Volume: *types.MustACName("m4"), Path: "/plain", AppVolume: inline("m4", "/srv/plain", false)},
				}
				ra.Annotations.Set(stage1abi.AnnotationMountOptions, `[{"volume":"m0","readOnly":"top","propagation":"private"},`+
					`{"volume":"m1","readOnly":"recursive","propagation":"private"},{"volume":"m2","propagation":"rshared"},{"volume":"m3","propagation":"rslave"}]`)
			},
			dns: abiargs.DNSConf{Resolv: "none", Hosts: "none"},
			check: func(t *testing.T, p Plan) {
				t.Helper()
				for _, m := range p.Mounts {
					switch m.Target {
					case "/top":
						if m.RecursiveReadOnly() || m.Flags&ReadOnly == 0 {
							t.Errorf("/top: flags %s, want read-only top only", m.Flags)
						}
					case "/rro":
						if !m.RecursiveReadOnly() {
							t.Errorf("/rro: flags %s, want recursively read-only", m.Flags)
						}
					}
				}
			},
		},
		{
			name: "tmp-mount-point-no-dns",
			app: func() *types.App {
				a := baseApp()
				a.MountPoints = []types.MountPoint{{Name: *types.MustACName("scratch"), Path: "/tmp"}}
				return a
			},
			dns: abiargs.DNSConf{Resolv: "none", Hosts: "none"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra := testApp(t, "web", tt.app())
			if tt.ra != nil {
				tt.ra(&ra)
			}
			pm := testPod(t, []schema.RuntimeApp{ra}, tt.vols)
			p, err := PlanMounts(PlanConfig{PodDir: testPodDir, Pod: pm, App: &pm.Apps[0], DNS: tt.dns, ResolvConf: tt.gen[0], Hosts: tt.gen[1]})
			if err != nil {
				t.Fatalf("PlanMounts: %v", err)
			}
			got, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "plan-"+filepath.Base(tt.name)+".golden.json", append(got, '\n'))
			if tt.check != nil {
				tt.check(t, p)
			}

			// The plan crosses a process boundary as JSON: it must
			// survive the round trip.
			var back Plan
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("unmarshal plan: %v", err)
			}
			if !reflect.DeepEqual(back, p) {
				t.Errorf("plan changed in a JSON round trip:\n%+v\n%+v", back, p)
			}
		})
	}
}

func TestPlanMountsErrors(t *testing.T) {
	host := func(name, src string) types.Volume {
		return types.Volume{Name: *types.MustACName(name), Kind: "host", Source: src}
	}
	mount := func(vol, path string) schema.Mount { return schema.Mount{Volume: *types.MustACName(vol), Path: path} }
	tests := []struct {
		name      string
		mounts    []schema.Mount
		vols      []types.Volume
		podDir    string
		options   string // stage1abi.AnnotationMountOptions
		wantClass error
	}{
		{name: "unreadable options", mounts: []schema.Mount{mount("a", "/x")}, vols: []types.Volume{host("a", "/a")}, options: `{`, wantClass: errdefs.ErrInvalidArgument},
		{name: "options for no mount", mounts: []schema.Mount{mount("a", "/x")}, vols: []types.Volume{host("a", "/a")}, options: `[{"volume":"b"}]`, wantClass: errdefs.ErrInvalidArgument},
		{name: "recursive read-only of a writable volume", mounts: []schema.Mount{mount("a", "/x")}, vols: []types.Volume{host("a", "/a")}, options: `[{"volume":"a","readOnly":"recursive"}]`, wantClass: errdefs.ErrInvalidArgument},
		{
			name: "recursive read-only and shared", mounts: []schema.Mount{mount("a", "/x")},
			vols:    []types.Volume{{Name: *types.MustACName("a"), Kind: "host", Source: "/a", ReadOnly: ptr(true)}},
			options: `[{"volume":"a","readOnly":"recursive","propagation":"rshared"}]`, wantClass: errdefs.ErrInvalidArgument,
		},
		{
			name: "recursive read-only of a non-recursive volume", mounts: []schema.Mount{mount("a", "/x")},
			vols:    []types.Volume{{Name: *types.MustACName("a"), Kind: "host", Source: "/a", ReadOnly: ptr(true), Recursive: ptr(false)}},
			options: `[{"volume":"a","readOnly":"recursive"}]`, wantClass: errdefs.ErrInvalidArgument,
		},
		{name: "relative pod dir", podDir: "pods/x", wantClass: errdefs.ErrInvalidArgument},
		{name: "unknown volume", mounts: []schema.Mount{mount("nope", "/x")}, wantClass: errdefs.ErrNotFound},
		{name: "relative path", mounts: []schema.Mount{mount("a", "x")}, vols: []types.Volume{host("a", "/a")}, wantClass: errdefs.ErrInvalidArgument},
		{name: "whole rootfs", mounts: []schema.Mount{mount("a", "/")}, vols: []types.Volume{host("a", "/a")}, wantClass: errdefs.ErrInvalidArgument},
		{name: "reserved proc", mounts: []schema.Mount{mount("a", "/proc/")}, vols: []types.Volume{host("a", "/a")}, wantClass: errdefs.ErrInvalidArgument},
		{name: "reserved dev", mounts: []schema.Mount{mount("a", "/dev")}, vols: []types.Volume{host("a", "/a")}, wantClass: errdefs.ErrInvalidArgument},
		{
			name:      "same target twice",
			mounts:    []schema.Mount{mount("a", "/x"), mount("b", "/x/")},
			vols:      []types.Volume{host("a", "/a"), host("b", "/b")},
			wantClass: errdefs.ErrInvalidArgument,
		},
		{
			name:      "nested targets",
			mounts:    []schema.Mount{mount("a", "/x/y"), mount("b", "/x")},
			vols:      []types.Volume{host("a", "/a"), host("b", "/b")},
			wantClass: errdefs.ErrInvalidArgument,
		},
		{
			name:      "bad empty mode",
			mounts:    []schema.Mount{mount("e", "/e")},
			vols:      []types.Volume{{Name: *types.MustACName("e"), Kind: "empty", Mode: ptr("rwx")}},
			wantClass: errdefs.ErrInvalidArgument,
		},
		{
			name:      "unknown kind",
			mounts:    []schema.Mount{mount("k", "/k")},
			vols:      []types.Volume{{Name: *types.MustACName("k"), Kind: "nfs"}},
			wantClass: errdefs.ErrInvalidArgument,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra := testApp(t, "web", baseApp())
			ra.Mounts = tt.mounts
			if tt.options != "" {
				ra.Annotations.Set(stage1abi.AnnotationMountOptions, tt.options)
			}
			// Build the manifest by hand: some cases are invalid for the
			// schema's own JSON validation.
			pm := schema.BlankPodManifest()
			pm.Apps = schema.AppList{ra}
			pm.Volumes = tt.vols
			podDir := tt.podDir
			if podDir == "" {
				podDir = testPodDir
			}
			_, err := PlanMounts(PlanConfig{PodDir: podDir, Pod: pm, App: &pm.Apps[0]})
			if !errors.Is(err, tt.wantClass) {
				t.Fatalf("PlanMounts error = %v, want class %v", err, tt.wantClass)
			}
		})
	}
}

// recorder is a Mounter that records the mounts it is asked for and fails
// at the mount whose target is failAt.
type recorder struct {
	got    []Mount
	failAt string
}

var errInjected = errors.New("injected")

func (r *recorder) Mount(_ context.Context, m Mount) error {
	r.got = append(r.got, m)
	if m.Target == r.failAt {
		return errInjected
	}
	return nil
}

var _ Mounter = (*recorder)(nil)

func TestApply(t *testing.T) {
	plan := Plan{Mounts: []Mount{
		{Kind: KindFS, Source: "proc", Target: "/proc", FSType: "proc", Purpose: "system"},
		{Kind: KindBind, Source: "/srv", Target: "/srv", Purpose: "volume srv"},
		{Kind: KindBind, Source: "/etc/hosts", Target: "/etc/hosts", Purpose: "dns"},
	}}
	tests := []struct {
		name    string
		failAt  string
		wantN   int
		wantErr bool
	}{
		{name: "all in order", wantN: 3},
		{name: "stops at the first error", failAt: "/srv", wantN: 2, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{failAt: tt.failAt}
			err := Apply(context.Background(), r, plan)
			if tt.wantErr != (err != nil) {
				t.Fatalf("Apply error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errInjected) {
				t.Errorf("Apply error %v does not wrap the mounter's", err)
			}
			if !reflect.DeepEqual(r.got, plan.Mounts[:tt.wantN]) {
				t.Errorf("mounts = %+v, want the first %d of the plan", r.got, tt.wantN)
			}
		})
	}
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := &recorder{}
		if err := Apply(ctx, r, plan); !errors.Is(err, context.Canceled) || len(r.got) != 0 {
			t.Errorf("Apply on a cancelled context = %v after %d mounts", err, len(r.got))
		}
	})
}

func TestMountFlagsJSON(t *testing.T) {
	tests := []struct {
		name  string
		flags MountFlags
		json  string
	}{
		{name: "none", flags: 0, json: `[]`},
		{name: "some", flags: Recursive | ReadOnly, json: `["rec","ro"]`},
		{name: "all", flags: Recursive | ReadOnly | NoSuid | NoDev | NoExec, json: `["rec","ro","nosuid","nodev","noexec"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.flags)
			if err != nil || string(b) != tt.json {
				t.Fatalf("Marshal = %s, %v; want %s", b, err, tt.json)
			}
			var f MountFlags
			if err := json.Unmarshal(b, &f); err != nil || f != tt.flags {
				t.Fatalf("Unmarshal(%s) = %v, %v", b, f, err)
			}
		})
	}
	var f MountFlags
	if err := json.Unmarshal([]byte(`["bogus"]`), &f); err == nil {
		t.Error("Unmarshal accepted an unknown flag")
	}
}
