package sdpod

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/idrange"
	"github.com/nosecone/nscn/internal/mdsclient"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

const testUUID = "6f1c0e8a-3b7d-4e0a-9c1e-2a5b4c3d2e1f"

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) { t.Helper(); testutil.Golden(t, name, []byte(got)) }

func testManifest(t *testing.T) *schema.PodManifest {
	t.Helper()
	ro := true
	pm := schema.BlankPodManifest()
	pm.Volumes = []types.Volume{
		{Name: *types.MustACName("data"), Kind: "host", Source: "/srv/data"},
		{Name: *types.MustACName("cache"), Kind: "empty", ReadOnly: &ro},
	}
	for _, name := range []string{"web", "worker"} {
		pm.Apps = append(pm.Apps, schema.RuntimeApp{
			Name: *types.MustACName(name),
			App: &types.App{
				Exec: types.Exec{"/bin/sh", "-c", "echo " + name}, User: "0", Group: "0",
				Environment: types.Environment{{Name: "GREETING", Value: "hi"}},
			},
			Mounts: []schema.Mount{
				{Volume: *types.MustACName("data"), Path: "/data"},
				{Volume: *types.MustACName("cache"), Path: "/cache"},
			},
		})
	}
	return pm
}

func TestNewLayoutGolden(t *testing.T) {
	tests := []struct {
		name string
		dns  string
		url  string
		pid1 bool // the first app asks to be pid 1 (stage1abi.AnnotationAppPID1)
	}{
		{name: "default-dns", dns: ""},
		{name: "stage0-dns", dns: "resolv=stage0,hosts=host"},
		{name: "metadata-url", url: "http://127.0.0.1:18112/tok"},
		{name: "pid1", pid1: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := ParseRunArgs([]string{"--net=host", "--dns-conf-mode=" + tt.dns, testUUID})
			if tt.dns == "" {
				args, err = ParseRunArgs([]string{"--net=host", testUUID})
			}
			if err != nil {
				t.Fatal(err)
			}
			pm := testManifest(t)
			if tt.pid1 {
				pm.Apps[0].Annotations.Set(stage1abi.AnnotationAppPID1, "true")
			}
			l, err := NewLayout(LayoutConfig{PodDir: "/var/lib/nscn/pods/run/" + testUUID, Manifest: pm, Args: args, MetadataURL: tt.url})
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.MarshalIndent(l, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "layout-"+tt.name+".golden.json", string(b)+"\n")
		})
	}
}

func TestMetadataURL(t *testing.T) {
	loop, _ := MetadataHost(NetHost)
	tests := []struct {
		name string
		argv []string
		host netip.Addr
		want string
	}{
		{
			name: "host network", argv: []string{"--net=host", "--mds-token=tok", "--mds-port=4000", testUUID}, host: loop,
			want: "http://127.0.0.1:4000/tok",
		},
		{
			name: "default port from an older stage0", argv: []string{"--net=host", "--mds-token=tok", testUUID}, host: loop,
			want: "http://127.0.0.1:18112/tok",
		},
		{
			name: "pod network host side", argv: []string{"--mds-token=tok", "--mds-port=18112", testUUID}, host: netip.MustParseAddr("fd00::1"),
			want: "http://[fd00::1]:18112/tok",
		},
		{name: "not registered", argv: []string{"--net=host", "--mds-port=4000", testUUID}, host: loop},
		{name: "no way to the host", argv: []string{"--net=none", "--mds-token=tok", testUUID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseRunArgs(tt.argv)
			if err != nil {
				t.Fatal(err)
			}
			got := MetadataURL(a, tt.host)
			if got != tt.want {
				t.Fatalf("MetadataURL = %q, want %q", got, tt.want)
			}
			if port := a.MDSPort; got != "" && port != 0 && got != mdsclient.MetadataURL(tt.host, port, a.MDSToken) {
				t.Fatalf("MetadataURL = %q, but the service's own form is %q", got, mdsclient.MetadataURL(tt.host, port, a.MDSToken))
			}
		})
	}
	if _, ok := MetadataHost(NetNone); ok {
		t.Error("MetadataHost(NetNone) found a way to the host")
	}
}

// TestNewLayoutMutable: a mutable pod may have no app, and an app added
// to it (app/add: the manifest of that app alone, BindDir of its own)
// gets its host binds below its own directory.
func TestNewLayoutMutable(t *testing.T) {
	args, err := ParseRunArgs([]string{"--net=host", "--mutable", testUUID})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLayout(LayoutConfig{PodDir: "/p", Manifest: schema.BlankPodManifest(), Args: args})
	if err != nil || len(l.Pod.Apps) != 0 || !l.Pod.Mutable {
		t.Fatalf("NewLayout of an empty mutable pod = %+v, %v", l.Pod, err)
	}
	one := testManifest(t)
	one.Apps = one.Apps[1:]
	l, err = NewLayout(LayoutConfig{PodDir: "/p", Manifest: one, Args: args, BindDir: AppBindDir("worker")})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Binds) == 0 {
		t.Fatal("no binds for the app's host volume")
	}
	for _, b := range l.Binds {
		if !strings.HasPrefix(b.Target, "/nscn/host/app/worker/") {
			t.Errorf("bind %+v is not below the app's bind directory", b)
		}
	}
}

// TestNewLayoutPID1: the app annotation stage1abi.AnnotationAppPID1
// reaches the helper's config for that app only.
func TestNewLayoutPID1(t *testing.T) {
	args, err := ParseRunArgs([]string{testUUID})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		value string // "" for no annotation
		want  bool
	}{
		{name: "no annotation", want: false},
		{name: "true", value: "true", want: true},
		{name: "false", value: "false", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm := testManifest(t)
			if tt.value != "" {
				pm.Apps[0].Annotations.Set(stage1abi.AnnotationAppPID1, tt.value)
			}
			l, err := NewLayout(LayoutConfig{PodDir: "/p", Manifest: pm, Args: args})
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Pod.Apps[0].PID1; got != tt.want {
				t.Errorf("app %s: PID1 = %v, want %v", l.Pod.Apps[0].Spec.Name, got, tt.want)
			}
			if l.Pod.Apps[1].PID1 {
				t.Errorf("app %s without the annotation: PID1 set", l.Pod.Apps[1].Spec.Name)
			}
		})
	}
}

func TestNewLayoutRefuses(t *testing.T) {
	args, err := ParseRunArgs([]string{testUUID})
	if err != nil {
		t.Fatal(err)
	}
	noExec := testManifest(t)
	noExec.Apps[1].App.Exec = nil
	badPID1 := testManifest(t)
	badPID1.Apps[0].Annotations.Set(stage1abi.AnnotationAppPID1, "yes")
	tests := []struct {
		name   string
		podDir string
		pm     *schema.PodManifest
	}{
		{name: "relative pod dir", podDir: "pods/x", pm: testManifest(t)},
		{name: "no apps", podDir: "/p", pm: schema.BlankPodManifest()},
		{name: "app without exec", podDir: "/p", pm: noExec},
		{name: "pid1 annotation neither true nor false", podDir: "/p", pm: badPID1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewLayout(LayoutConfig{PodDir: tt.podDir, Manifest: tt.pm, Args: args}); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("NewLayout = %v, want an invalid-argument error", err)
			}
		})
	}
}

func TestParseRunArgs(t *testing.T) {
	tests := []struct {
		name     string
		argv     []string
		wantNet  string
		wantNets string
		wantErr  error
		// interactive is the expected RunArgs.Interactive.
		interactive bool
		users       idrange.Range
	}{
		{name: "default net", argv: []string{"--net=default", testUUID}, wantNet: NetCNI, wantNets: "default"},
		{name: "no net flag", argv: []string{testUUID}, wantNet: NetCNI, wantNets: "default"},
		{name: "host", argv: []string{"--debug", "--net=host", "--hostname=h", "--ipc=private", testUUID}, wantNet: NetHost, wantNets: "host"},
		{name: "none", argv: []string{"--net=none", "--interactive=false", testUUID}, wantNet: NetNone, wantNets: "none"},
		{name: "named networks", argv: []string{"--net=default,mynet:IP=10.1.2.3", testUUID}, wantNet: NetCNI, wantNets: "default,mynet:IP=10.1.2.3"},
		{name: "host with another", argv: []string{"--net=host,default", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "bad network name", argv: []string{"--net=-x", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "interactive", argv: []string{"--interactive", testUUID}, wantNet: NetCNI, wantNets: "default", interactive: true},
		{name: "interactive not a boolean", argv: []string{"--interactive=maybe", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "ipc parent", argv: []string{"--ipc=parent", testUUID}, wantNet: NetCNI, wantNets: "default"},
		{name: "ipc parent with private users", argv: []string{"--ipc=parent", "--private-users=524288:65536", testUUID}, wantErr: errdefs.ErrNotImplemented},
		{name: "ipc unknown", argv: []string{"--ipc=shared", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "pid parent", argv: []string{"--pid=parent", testUUID}, wantNet: NetCNI, wantNets: "default"},
		{name: "pid private", argv: []string{"--pid=private", testUUID}, wantNet: NetCNI, wantNets: "default"},
		{name: "pid parent with private users", argv: []string{"--pid=parent", "--private-users=524288:65536", testUUID}, wantErr: errdefs.ErrNotImplemented},
		{name: "pid unknown", argv: []string{"--pid=host", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "pid without value", argv: []string{"--pid", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "net without value", argv: []string{"--net", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "unknown flag", argv: []string{"--frob", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "no uuid", argv: []string{"--net=host"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "mds token and port", argv: []string{"--mds-token=abc-DEF_123", "--mds-port=4000", testUUID}, wantNet: NetCNI, wantNets: "default"},
		{name: "mds port zero", argv: []string{"--mds-port=0", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "mds port too big", argv: []string{"--mds-port=65536", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "mds port not a number", argv: []string{"--mds-port=http", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "mds port without value", argv: []string{"--mds-port", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "mds token with a slash", argv: []string{"--mds-token=a/b", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "private users", argv: []string{"--private-users=524288:65536", testUUID}, wantNet: NetCNI, wantNets: "default", users: idrange.Range{Base: 524288, Count: 65536}},
		{name: "private users with host root", argv: []string{"--private-users=0:65536", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "private users without value", argv: []string{"--private-users", testUUID}, wantErr: errdefs.ErrInvalidArgument},
		{name: "mutable", argv: []string{"--net=host", "--mutable", testUUID}, wantNet: NetHost, wantNets: "host"},
		{name: "mutable with a value", argv: []string{"--mutable=true", testUUID}, wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseRunArgs(tt.argv)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseRunArgs(%q) = %v, want %v", tt.argv, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRunArgs(%q): %v", tt.argv, err)
			}
			if a.NetMode != tt.wantNet || a.Nets.String() != tt.wantNets || a.UUID != testUUID || a.Interactive != tt.interactive || a.PrivateUsers != tt.users ||
				a.Mutable != slices.Contains(tt.argv, "--mutable") || a.HostPID != slices.Contains(tt.argv, "--pid=parent") {
				t.Fatalf("ParseRunArgs(%q) = %+v", tt.argv, a)
			}
		})
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name, code, status string
		want               int
		wantErr            bool
	}{
		{name: "success", code: "exited", status: "0", want: 0},
		{name: "failure", code: "exited", status: "5", want: 5},
		{name: "killed", code: "killed", status: "KILL", want: 137},
		{name: "terminated", code: "killed", status: "TERM", want: 143},
		{name: "core dump", code: "dumped", status: "SEGV", want: 139},
		{name: "realtime", code: "killed", status: "RTMIN+3", want: 128 + 37},
		{name: "never ran", want: stage1abi.ExitRuntime},
		{name: "status too big", code: "exited", status: "300", wantErr: true},
		{name: "signal unknown", code: "killed", status: "FOO", wantErr: true},
		{name: "code unknown", code: "vanished", status: "1", wantErr: true},
		{name: "status without code", status: "1", wantErr: true},
		{name: "padded status", code: "exited", status: "05", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExitStatus(tt.code, tt.status)
			if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
				t.Fatalf("ExitStatus(%q, %q) = %d, %v; want %d, error %v", tt.code, tt.status, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPodStatus(t *testing.T) {
	apps := []string{"a", "b", "c"}
	tests := []struct {
		name   string
		in     PodStatusInput
		want   int
		wantOK bool
	}{
		{name: "all succeeded", in: PodStatusInput{Apps: apps, Statuses: map[string]int{"a": 0, "b": 0, "c": 0}}, want: 0, wantOK: true},
		{name: "first failure wins", in: PodStatusInput{Apps: apps, FirstFailure: "5\n", Statuses: map[string]int{"a": 0, "b": 5, "c": 143}}, want: 5, wantOK: true},
		{name: "killed", in: PodStatusInput{Apps: apps, Killed: true, Statuses: map[string]int{"a": 0}}, want: 137, wantOK: true},
		{name: "failure without marker", in: PodStatusInput{Apps: apps, Statuses: map[string]int{"a": 0, "b": 3, "c": 0}}, want: 3, wantOK: true},
		{name: "app without status", in: PodStatusInput{Apps: apps, Statuses: map[string]int{"a": 0}}, wantOK: false},
		{name: "garbage marker", in: PodStatusInput{Apps: apps, FirstFailure: "x", Statuses: map[string]int{}}, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := PodStatus(tt.in)
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Fatalf("PodStatus = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzSignalExitStatus(f *testing.F) {
	for _, s := range [][2]string{{"exited", "0"}, {"killed", "RTMIN+4"}, {"dumped", "SIGABRT"}, {"", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, code, status string) {
		n, err := ExitStatus(code, status)
		if err == nil && (n < 0 || n > 255) {
			t.Fatalf("ExitStatus(%q, %q) = %d, outside 0..255", code, status, n)
		}
		if s, err := SignalNumber(status); err == nil && (s < 1 || s > sigRTMax) {
			t.Fatalf("SignalNumber(%q) = %d", status, s)
		}
	})
}

func FuzzParseRunArgs(f *testing.F) {
	f.Add("--net=none", "--ipc=auto", testUUID)
	f.Add("--pid=parent", "--ipc=parent", testUUID)
	f.Add("--interactive=0", "--dns-conf-mode=resolv=host", testUUID)
	f.Add("--mds-token=abc_DEF-1", "--mds-port=18112", testUUID)
	f.Fuzz(func(t *testing.T, a, b, c string) {
		args, err := ParseRunArgs([]string{a, b, c})
		if err == nil && args.NetMode != NetHost && args.NetMode != NetNone && args.NetMode != NetCNI {
			t.Fatalf("ParseRunArgs accepted net mode %q", args.NetMode)
		}
	})
}

func TestRemoveApp(t *testing.T) {
	tests := []struct {
		name string
		pod  []string
		rm   string
		want []string
		had  bool
	}{
		{name: "the middle one", pod: []string{"a", "b", "c"}, rm: "b", want: []string{"a", "c"}, had: true},
		{name: "the only one", pod: []string{"a"}, rm: "a", want: []string{}, had: true},
		{name: "none such", pod: []string{"a", "b"}, rm: "c", want: []string{"a", "b"}},
		{name: "an empty pod", rm: "a", want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Pod
			for _, n := range tt.pod {
				p.Apps = append(p.Apps, App{Spec: appspec.AppSpec{Name: n}})
			}
			had := p.RemoveApp(tt.rm)
			if got := p.Names(); had != tt.had || !slices.Equal(got, tt.want) {
				t.Errorf("RemoveApp(%q) of %v = %v, apps %v; want %v, %v", tt.rm, tt.pod, had, got, tt.want, tt.had)
			}
		})
	}
}

func TestRuntimeApp(t *testing.T) {
	pm := &schema.PodManifest{}
	for _, n := range []string{"a", "b"} {
		pm.Apps = append(pm.Apps, schema.RuntimeApp{Name: types.ACName(n), App: &types.App{Exec: types.Exec{"/x"}}})
	}
	pm.Apps = append(pm.Apps, schema.RuntimeApp{Name: "no-def"})
	tests := []struct {
		name    string
		wantErr error
	}{
		{name: "a"},
		{name: "b"},
		{name: "c", wantErr: errdefs.ErrNotFound},
		{name: "no-def", wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra, err := RuntimeApp(pm, tt.name)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || ra.Name.String() != tt.name {
				t.Fatalf("RuntimeApp(%q) = %v, %v", tt.name, ra, err)
			}
		})
	}
}

func TestCheckAddedAppOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		add  abiargs.AppArgs
		run  abiargs.RunArgs
		want string // "" for allowed
	}{
		{name: "none", add: abiargs.AppArgs{}, run: abiargs.RunArgs{}},
		{name: "as the pod", add: abiargs.AppArgs{DisableSeccomp: true}, run: abiargs.RunArgs{DisableSeccomp: true}},
		{name: "the pod is looser", add: abiargs.AppArgs{}, run: abiargs.RunArgs{DisableCapabilities: true, DisablePaths: true}},
		{name: "capabilities", add: abiargs.AppArgs{DisableCapabilities: true}, want: "--insecure-options=capabilities"},
		{name: "paths", add: abiargs.AppArgs{DisablePaths: true}, run: abiargs.RunArgs{DisableSeccomp: true}, want: "--insecure-options=paths"},
		{name: "seccomp", add: abiargs.AppArgs{DisableSeccomp: true}, want: "--insecure-options=seccomp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckAddedAppOptions(tt.add, tt.run)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want FailedPrecondition naming %s", err, tt.want)
			}
		})
	}
}
