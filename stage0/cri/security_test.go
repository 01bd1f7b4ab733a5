package cri

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/appc/spec/schema/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/isolate/caps"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/prepare"
)

// policyOf computes the stage1's policy for the app applySecurity made,
// as the stage1 would from the pod manifest.
func policyOf(t *testing.T, app prepare.App) *isolate.Policy {
	t.Helper()
	ra := types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0", Isolators: app.Isolators}
	b, err := json.Marshal(ra)
	if err != nil {
		t.Fatal(err)
	}
	// Through JSON, as the pod manifest carries them.
	var back types.App
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	p, _, err := isolate.PolicyFor(&back, isolate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplySecurityCapabilities(t *testing.T) {
	all, err := allCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	netAdmin, _ := caps.Parse("CAP_NET_ADMIN")
	tests := []struct {
		name      string
		add, drop []string
		want      caps.Set
	}{
		{name: "none", want: caps.Default},
		{name: "add NET_ADMIN", add: []string{"NET_ADMIN"}, want: caps.Default.Add(netAdmin)},
		{name: "add with prefix", add: []string{"CAP_NET_ADMIN"}, want: caps.Default.Add(netAdmin)},
		{name: "drop NET_RAW", drop: []string{"NET_RAW"}, want: caps.Default.Remove(caps.NetRaw)},
		{name: "add ALL", add: []string{"ALL"}, want: all},
		{name: "drop ALL", drop: []string{"ALL"}, want: 0},
		{name: "drop ALL add one", add: []string{"KILL"}, drop: []string{"ALL"}, want: caps.Of(caps.Kill)},
		{name: "add ALL drop one", add: []string{"ALL"}, drop: []string{"CHOWN"}, want: all.Remove(caps.Chown)},
		{name: "add ALL drop ALL", add: []string{"ALL"}, drop: []string{"ALL"}, want: all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var app prepare.App
			sc := &runtimeapi.LinuxContainerSecurityContext{
				Capabilities: &runtimeapi.Capability{AddCapabilities: tt.add, DropCapabilities: tt.drop},
				Seccomp:      &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			}
			if err := applySecurity(sc, false, &app); err != nil {
				t.Fatal(err)
			}
			if got := policyOf(t, app).Caps.Bounding; got != tt.want {
				t.Errorf("bounding set %s, want %s", got, tt.want)
			}
		})
	}
}

func TestApplySecurity(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "block-chmod.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	i64 := func(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }
	tests := []struct {
		name       string
		sc         *runtimeapi.LinuxContainerSecurityContext
		privileged bool // the sandbox's
		check      func(t *testing.T, app prepare.App, p *isolate.Policy)
		err        error
	}{
		{
			name: "nil profile is unconfined",
			sc:   &runtimeapi.LinuxContainerSecurityContext{},
			check: func(t *testing.T, _ prepare.App, p *isolate.Policy) {
				if p.Seccomp != nil {
					t.Errorf("filter %v, want none", p.Seccomp)
				}
			},
		},
		{
			name: "runtime default",
			sc:   &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{}},
			check: func(t *testing.T, _ prepare.App, p *isolate.Policy) {
				if p.Seccomp == nil || !slices.Contains(p.Seccomp.Syscalls, "kexec_load") {
					t.Errorf("filter %v, want nscn's default", p.Seccomp)
				}
			},
		},
		{
			name: "deprecated path runtime/default",
			sc:   &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "runtime/default"}, //nolint:staticcheck // SA1019: older kubelets send it
			check: func(t *testing.T, _ prepare.App, p *isolate.Policy) {
				if p.Seccomp == nil {
					t.Error("no filter, want nscn's default")
				}
			},
		},
		{
			name: "localhost",
			sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{
				ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile,
			}},
			check: func(t *testing.T, _ prepare.App, p *isolate.Policy) {
				if p.Seccomp == nil || !slices.Equal(p.Seccomp.Syscalls, []string{"chmod", "fchmodat"}) || p.Seccomp.Errno != "EPERM" {
					t.Errorf("filter %+v, want chmod and fchmodat failing with EPERM", p.Seccomp)
				}
			},
		},
		{
			name: "localhost deprecated path",
			sc:   &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "localhost/" + profile}, //nolint:staticcheck // SA1019: older kubelets send it
			check: func(t *testing.T, _ prepare.App, p *isolate.Policy) {
				if p.Seccomp == nil || len(p.Seccomp.Syscalls) != 2 {
					t.Errorf("filter %+v, want the profile's", p.Seccomp)
				}
			},
		},
		{
			name: "localhost missing file",
			sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{
				ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: filepath.Join(dir, "nope.json"),
			}},
			err: errdefs.ErrInvalidArgument,
		},
		{
			name: "localhost relative path",
			sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{
				ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "profile.json",
			}},
			err: errdefs.ErrInvalidArgument,
		},
		{
			name:       "privileged: every capability, no filter, the profile ignored",
			privileged: true,
			sc: &runtimeapi.LinuxContainerSecurityContext{Privileged: true, Seccomp: &runtimeapi.SecurityProfile{
				ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile,
			}},
			check: func(t *testing.T, _ prepare.App, p *isolate.Policy) {
				if all, _ := allCapabilities(); p.Seccomp != nil || p.Caps.Bounding != all {
					t.Errorf("filter %v, bounding %s; want none and every capability", p.Seccomp, p.Caps.Bounding)
				}
			},
		},
		{
			name: "privileged container in an unprivileged sandbox",
			sc:   &runtimeapi.LinuxContainerSecurityContext{Privileged: true},
			err:  errdefs.ErrInvalidArgument,
		},
		{
			name: "no_new_privs",
			sc:   &runtimeapi.LinuxContainerSecurityContext{NoNewPrivs: true},
			check: func(t *testing.T, _ prepare.App, p *isolate.Policy) {
				if !p.NoNewPrivs {
					t.Error("no_new_privs not set")
				}
			},
		},
		{
			name: "user, group and supplemental groups",
			sc:   &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(2000), SupplementalGroups: []int64{1234, 5678}},
			check: func(t *testing.T, app prepare.App, _ *isolate.Policy) {
				if app.User != "1000" || app.Group != "2000" || !slices.Equal(app.SupplementaryGIDs, []int{1234, 5678}) {
					t.Errorf("user %q group %q groups %v", app.User, app.Group, app.SupplementaryGIDs)
				}
			},
		},
		{
			name: "run_as_group without a user",
			sc:   &runtimeapi.LinuxContainerSecurityContext{RunAsGroup: i64(2000)},
			err:  errdefs.ErrInvalidArgument,
		},
		{
			name: "negative supplemental group",
			sc:   &runtimeapi.LinuxContainerSecurityContext{SupplementalGroups: []int64{-1}},
			err:  errdefs.ErrInvalidArgument,
		},
		{
			name: "strict supplemental groups policy",
			sc:   &runtimeapi.LinuxContainerSecurityContext{SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict},
			err:  errdefs.ErrNotImplemented,
		},
		{
			name: "masked and read-only paths",
			sc:   &runtimeapi.LinuxContainerSecurityContext{MaskedPaths: []string{"/bin/ls"}, ReadonlyPaths: []string{"/tmp"}},
			check: func(t *testing.T, app prepare.App, _ *isolate.Policy) {
				v, ok := app.Annotations.Get(stage1abi.AnnotationAppPaths)
				if !ok {
					t.Fatal("no paths annotation")
				}
				p, err := isolate.ParseAppPaths(v)
				if err != nil || !slices.Equal(p.Masked, []string{"/bin/ls"}) || !slices.Equal(p.ReadOnly, []string{"/tmp"}) {
					t.Errorf("paths %+v, %v", p, err)
				}
			},
		},
		{
			name: "relative masked path",
			sc:   &runtimeapi.LinuxContainerSecurityContext{MaskedPaths: []string{"bin/ls"}},
			err:  errdefs.ErrInvalidArgument,
		},
		{
			name: "ambient capabilities",
			sc:   &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{AddAmbientCapabilities: []string{"NET_ADMIN"}}},
			err:  errdefs.ErrNotImplemented,
		},
		{
			name: "unknown capability",
			sc:   &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"FLY"}}},
			err:  errdefs.ErrInvalidArgument,
		},
		{
			name: "container pid mode makes the app pid 1",
			sc:   &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}},
			check: func(t *testing.T, app prepare.App, _ *isolate.Policy) {
				if v, ok := app.Annotations.Get(stage1abi.AnnotationAppPID1); !ok || v != "true" {
					t.Errorf("annotation %s = %q, %v; want true", stage1abi.AnnotationAppPID1, v, ok)
				}
			},
		},
		{
			name: "pod pid mode keeps the stage1's init",
			sc:   &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}},
			check: func(t *testing.T, app prepare.App, _ *isolate.Policy) {
				if v, ok := app.Annotations.Get(stage1abi.AnnotationAppPID1); ok {
					t.Errorf("annotation %s = %q, want none", stage1abi.AnnotationAppPID1, v)
				}
			},
		},
		{
			name: "apparmor localhost",
			sc:   &runtimeapi.LinuxContainerSecurityContext{Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "p"}},
			err:  errdefs.ErrNotImplemented,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var app prepare.App
			err := applySecurity(tt.sc, tt.privileged, &app)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, app, policyOf(t, app))
		})
	}
}

func TestCheckSandboxSecurity(t *testing.T) {
	linux := func(sc *runtimeapi.LinuxSandboxSecurityContext, sysctls map[string]string) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: sc, Sysctls: sysctls}}
	}
	tests := []struct {
		name string
		cfg  *runtimeapi.PodSandboxConfig
		err  error
	}{
		{name: "empty", cfg: &runtimeapi.PodSandboxConfig{}},
		{name: "privileged", cfg: linux(&runtimeapi.LinuxSandboxSecurityContext{Privileged: true}, nil)},
		{name: "host network", cfg: linux(&runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}, nil)},
		{name: "host pid", cfg: linux(&runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_NODE}}, nil)},
		{name: "user namespace", cfg: linux(&runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}}}, nil), err: errdefs.ErrNotImplemented},
		{name: "host ipc", cfg: linux(&runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Ipc: runtimeapi.NamespaceMode_NODE}}, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkSandboxSecurity(tt.cfg); !errors.Is(err, tt.err) && (tt.err != nil || err != nil) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
		})
	}
}

func TestSeccompFromOCI(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		iso     string // the isolator's name
		set     []string
		errno   string
		bad     bool
	}{
		{
			name: "remove-set", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}`,
			iso: "os/linux/seccomp-remove-set", set: []string{"sethostname"}, errno: "EPERM",
		},
		{
			name: "errnoRet", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}`,
			iso: "os/linux/seccomp-remove-set", set: []string{"mkdir"}, errno: "ENOSYS",
		},
		{
			name: "kill", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_KILL_PROCESS"}]}`,
			iso: "os/linux/seccomp-remove-set", set: []string{"mkdir"},
		},
		{
			name: "retain-set", profile: `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},{"name":"exit_group","action":"SCMP_ACT_ALLOW"}]}`,
			iso: "os/linux/seccomp-retain-set", set: []string{"read", "write", "exit_group"}, errno: "EPERM",
		},
		{name: "allow all", profile: `{"defaultAction":"SCMP_ACT_ALLOW"}`, iso: "os/linux/seccomp-retain-set", set: []string{"@appc.io/all"}},
		{
			name: "rule like the default is dropped", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}`,
			iso: "os/linux/seccomp-remove-set", set: []string{"mkdir"}, errno: "EPERM",
		},
		{name: "args", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}`, bad: true},
		{name: "two errnos", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO"},{"names":["b"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}`, bad: true},
		{name: "trace", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_TRACE"}]}`, bad: true},
		{name: "notify", profile: `{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/x.sock"}`, bad: true},
		{name: "flags", profile: `{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"]}`, bad: true},
		{name: "nothing allowed", profile: `{"defaultAction":"SCMP_ACT_ERRNO"}`, bad: true},
		{name: "no default", profile: `{"syscalls":[]}`, bad: true},
		{name: "bad name", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["../x"],"action":"SCMP_ACT_ERRNO"}]}`, bad: true},
		{name: "no names", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}`, bad: true},
		{name: "errno zero", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","errnoRet":0}]}`, bad: true},
		{name: "not JSON", profile: `defaultAction`, bad: true},
		{name: "trailing data", profile: `{"defaultAction":"SCMP_ACT_ALLOW"} {}`, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iso, err := seccompFromOCI([]byte(tt.profile))
			if tt.bad {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("isolator %v, err %v; want an invalid-argument error", iso, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if iso.Name.String() != tt.iso {
				t.Fatalf("isolator %s, want %s", iso.Name, tt.iso)
			}
			var set []types.LinuxSeccompEntry
			var errno types.LinuxSeccompErrno
			switch v := iso.Value().(type) {
			case *types.LinuxSeccompRemoveSet:
				set, errno = v.Set(), v.Errno()
			case *types.LinuxSeccompRetainSet:
				set, errno = v.Set(), v.Errno()
			}
			var got []string
			for _, s := range set {
				got = append(got, string(s))
			}
			if !slices.Equal(got, tt.set) || string(errno) != tt.errno {
				t.Errorf("set %v errno %q, want %v %q", got, errno, tt.set, tt.errno)
			}
		})
	}
}

// FuzzSeccompFromOCI: any input gives an isolator or an invalid-argument
// error, never a panic, and an isolator the appc spec accepts.
func FuzzSeccompFromOCI(f *testing.F) {
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_KILL","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"name":"read","action":"SCMP_ACT_ALLOW","args":[]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		iso, err := seccompFromOCI(b)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not an invalid-argument error", err)
			}
			return
		}
		j, err := json.Marshal(iso)
		if err != nil {
			t.Fatal(err)
		}
		var back types.Isolator
		if err := json.Unmarshal(j, &back); err != nil || back.Value() == nil {
			t.Fatalf("isolator %s does not read back: %v", j, err)
		}
	})
}
