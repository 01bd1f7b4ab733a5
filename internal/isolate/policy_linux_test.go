package isolate

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate/caps"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/isolate/seccomp"
)

// appWith builds an app whose isolators are the given JSON array, parsed
// the way an image manifest is.
func appWith(t *testing.T, isolators string) *types.App {
	t.Helper()
	var app types.App
	if err := json.Unmarshal([]byte(`{"exec":["/bin/true"],"user":"0","group":"0","isolators":`+isolators+`}`), &app); err != nil {
		t.Fatalf("parse app: %v", err)
	}
	return &app
}

// status returns the status of the report entry name, or "".
func status(r Report, name string) Status {
	for _, e := range r {
		if e.Name == name {
			return e.Status
		}
	}
	return ""
}

func TestPolicyFor(t *testing.T) {
	def := caps.Default
	tests := []struct {
		name      string
		isolators string
		opts      Options
		// what the policy must hold
		caps       *caps.Sets // nil: Policy.Caps must be nil
		nnp        bool
		seccomp    func(t *testing.T, f *seccomp.Filter)
		oom        *int
		cgroup     cgroup.Limits
		pathsEmpty bool
		report     map[string]Status
	}{
		{
			name: "no isolators: defaults", isolators: `[]`,
			caps:    &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp: wantFilter(seccomp.Remove, "EPERM", "kexec_load", "bpf"),
			report:  map[string]Status{"capabilities": Default, "seccomp": Default, "paths": Default},
		},
		{
			name: "all disabled", isolators: `[]`,
			opts:       Options{DisableCapabilities: true, DisableSeccomp: true, DisablePaths: true},
			seccomp:    wantNoFilter,
			pathsEmpty: true,
			report:     map[string]Status{"capabilities": Ignored, "seccomp": Ignored, "paths": Ignored},
		},
		{
			name:      "capabilities remove-set",
			isolators: `[{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_CHOWN","CAP_NET_RAW","CAP_SYS_ADMIN"]}}]`,
			caps: &caps.Sets{
				Bounding:  def.Remove(caps.Chown).Remove(caps.NetRaw),
				Effective: def.Remove(caps.Chown).Remove(caps.NetRaw),
				Permitted: def.Remove(caps.Chown).Remove(caps.NetRaw),
			},
			seccomp: wantFilter(seccomp.Remove, "EPERM", "bpf"),
			report:  map[string]Status{"os/linux/capabilities-remove-set": Enforced, "capabilities": ""},
		},
		{
			name:      "capabilities retain-set is ambient too",
			isolators: `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_NET_ADMIN","CAP_NET_BIND_SERVICE"]}}]`,
			caps: func() *caps.Sets {
				s := caps.Of(12, caps.NetBindService)
				return &caps.Sets{Bounding: s, Effective: s, Permitted: s, Inheritable: s, Ambient: s}
			}(),
			seccomp: wantFilter(seccomp.Remove, "EPERM", "bpf"),
			report:  map[string]Status{"os/linux/capabilities-retain-set": Enforced},
		},
		{
			name:      "capability isolator with --disable-capabilities-restriction",
			isolators: `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_NET_ADMIN"]}}]`,
			opts:      Options{DisableCapabilities: true},
			seccomp:   wantFilter(seccomp.Remove, "EPERM", "bpf"),
			report:    map[string]Status{"os/linux/capabilities-retain-set": Ignored, "capabilities": ""},
		},
		{
			name:      "no-new-privileges",
			isolators: `[{"name":"os/linux/no-new-privileges","value":true}]`,
			caps:      &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			nnp:       true,
			seccomp:   wantFilter(seccomp.Remove, "EPERM", "bpf"),
			report:    map[string]Status{"os/linux/no-new-privileges": Enforced},
		},
		{
			name: "later isolator wins",
			isolators: `[{"name":"os/linux/no-new-privileges","value":true},
				{"name":"os/linux/no-new-privileges","value":false}]`,
			caps:    &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp: wantFilter(seccomp.Remove, "EPERM", "bpf"),
		},
		{
			name:      "seccomp remove-set is not augmented",
			isolators: `[{"name":"os/linux/seccomp-remove-set","value":{"errno":"ENOTSUP","set":["clock_adjtime","clock_settime","reboot"]}}]`,
			caps:      &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp: func(t *testing.T, f *seccomp.Filter) {
				wantFilter(seccomp.Remove, "ENOTSUP", "clock_adjtime", "clock_settime", "reboot")(t, f)
				if len(f.Syscalls) != 3 {
					t.Fatalf("syscalls = %v, want exactly the 3 listed", f.Syscalls)
				}
			},
			report: map[string]Status{"os/linux/seccomp-remove-set": Enforced, "seccomp": ""},
		},
		{
			name:      "seccomp remove-set @appc.io/empty is the default blacklist",
			isolators: `[{"name":"os/linux/seccomp-remove-set","value":{"set":["@appc.io/empty","uname"]}}]`,
			caps:      &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp: func(t *testing.T, f *seccomp.Filter) {
				wantFilter(seccomp.Remove, "", "kexec_load", "keyctl")(t, f)
				if len(f.Syscalls) != len(seccomp.DefaultBlacklist()) {
					t.Fatalf("syscalls = %v, want the default blacklist", f.Syscalls)
				}
			},
		},
		{
			name:      "seccomp retain-set gets the lifecycle syscalls",
			isolators: `[{"name":"os/linux/seccomp-retain-set","value":{"set":["read","write"]}}]`,
			caps:      &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp:   wantFilter(seccomp.Retain, "", "read", "write", "execve", "exit_group"),
			report:    map[string]Status{"os/linux/seccomp-retain-set": Modified},
		},
		{
			name:      "seccomp retain-set @appc.io/all turns filtering off",
			isolators: `[{"name":"os/linux/seccomp-retain-set","value":{"set":["@appc.io/all"]}}]`,
			caps:      &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp:   wantNoFilter,
			report:    map[string]Status{"os/linux/seccomp-retain-set": Enforced, "seccomp": ""},
		},
		{
			name:      "seccomp isolator with --disable-seccomp",
			isolators: `[{"name":"os/linux/seccomp-remove-set","value":{"set":["uname"]}}]`,
			opts:      Options{DisableSeccomp: true},
			caps:      &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp:   wantNoFilter,
			report:    map[string]Status{"os/linux/seccomp-remove-set": Ignored},
		},
		{
			name:      "seccomp syscall missing on this architecture",
			isolators: `[{"name":"os/linux/seccomp-remove-set","value":{"set":["uname","not_a_syscall"]}}]`,
			caps:      &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp:   wantFilter(seccomp.Remove, "", "uname", "not_a_syscall"),
			report:    map[string]Status{"os/linux/seccomp-remove-set": Modified},
		},
		{
			name: "resources",
			isolators: `[{"name":"resource/memory","value":{"limit":"64Mi"}},
				{"name":"resource/cpu","value":{"request":"250m","limit":"500m"}},
				{"name":"os/linux/cpu-shares","value":512},
				{"name":"os/linux/oom-score-adj","value":500}]`,
			caps:    &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp: wantFilter(seccomp.Remove, "EPERM", "bpf"),
			oom:     intp(500),
			cgroup:  cgroup.Limits{MemoryMax: 64 << 20, CPUQuota: 50000, CPUPeriod: 100000, CPUShares: 512},
			report: map[string]Status{
				"resource/memory": Enforced, "resource/cpu": Modified,
				"os/linux/cpu-shares": Enforced, "os/linux/oom-score-adj": Enforced,
			},
		},
		{
			name:      "tiny cpu limit is raised to the kernel minimum",
			isolators: `[{"name":"resource/cpu","value":{"limit":"1m"}}]`,
			caps:      &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp:   wantFilter(seccomp.Remove, "EPERM", "bpf"),
			cgroup:    cgroup.Limits{CPUQuota: 1000, CPUPeriod: 100000},
			report:    map[string]Status{"resource/cpu": Modified},
		},
		{
			name: "unsupported isolators are reported as ignored",
			isolators: `[{"name":"resource/memory","value":{"request":"1G"}},
				{"name":"resource/network-bandwidth","value":{"default":true,"limit":"1G"}},
				{"name":"resource/block-iops","value":{"default":true,"limit":"1000"}},
				{"name":"os/linux/selinux-context","value":{"user":"u","role":"r","type":"t","level":"s0"}},
				{"name":"os/unix/sysctl","value":{"net.ipv4.tcp_mtu_probing":"1"}}]`,
			caps:    &caps.Sets{Bounding: def, Effective: def, Permitted: def},
			seccomp: wantFilter(seccomp.Remove, "EPERM", "bpf"),
			report: map[string]Status{
				"resource/memory": Ignored, "resource/network-bandwidth": Ignored, "resource/block-iops": Ignored,
				"os/linux/selinux-context": Ignored, "os/unix/sysctl": Ignored,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, r, err := PolicyFor(appWith(t, tt.isolators), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.caps == nil && p.Caps != nil:
				t.Errorf("caps = %+v, want none", *p.Caps)
			case tt.caps != nil && (p.Caps == nil || *p.Caps != *tt.caps):
				t.Errorf("caps = %+v, want %+v", p.Caps, *tt.caps)
			}
			if p.NoNewPrivs != tt.nnp {
				t.Errorf("NoNewPrivs = %v, want %v", p.NoNewPrivs, tt.nnp)
			}
			tt.seccomp(t, p.Seccomp)
			if (p.OOMScoreAdj == nil) != (tt.oom == nil) || (p.OOMScoreAdj != nil && *p.OOMScoreAdj != *tt.oom) {
				t.Errorf("OOMScoreAdj = %v, want %v", p.OOMScoreAdj, tt.oom)
			}
			if p.Cgroup != tt.cgroup {
				t.Errorf("cgroup = %+v, want %+v", p.Cgroup, tt.cgroup)
			}
			if (len(p.Paths.ReadOnly) == 0) != tt.pathsEmpty {
				t.Errorf("paths = %+v, want empty=%v", p.Paths, tt.pathsEmpty)
			}
			for name, want := range tt.report {
				if got := status(r, name); got != want {
					t.Errorf("report %s: %q, want %q\nreport:\n%s", name, got, want, reportText(r))
				}
			}
			// Every isolator of the app is in the report.
			for _, iso := range appWith(t, tt.isolators).Isolators {
				if status(r, iso.Name.String()) == "" {
					t.Errorf("isolator %s missing from the report", iso.Name)
				}
			}
			// The policy crosses to the helper as JSON.
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var back Policy
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			b2, _ := json.Marshal(&back)
			if string(b) != string(b2) {
				t.Errorf("JSON round trip changed the policy:\n%s\n%s", b, b2)
			}
		})
	}
}

// An image manifest with an isolator appc does not know fails to parse;
// one built in code reaches PolicyFor with no value.
func TestUnknownIsolatorIgnored(t *testing.T) {
	raw := json.RawMessage(`{"x":1}`)
	app := &types.App{Isolators: types.Isolators{{Name: "example.com/frobnicate", ValueRaw: &raw}}}
	_, r, err := PolicyFor(app, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := status(r, "example.com/frobnicate"); got != Ignored {
		t.Fatalf("status %q, want ignored\n%s", got, reportText(r))
	}
}

func TestPolicyForRefuses(t *testing.T) {
	tests := []struct {
		name      string
		isolators string
	}{
		{name: "retain and remove capabilities", isolators: `[
			{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_CHOWN"]}},
			{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_KILL"]}}]`},
		{name: "unknown capability", isolators: `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_FLY"]}}]`},
		{name: "unknown seccomp group", isolators: `[{"name":"os/linux/seccomp-remove-set","value":{"set":["@docker/default-blacklist"]}}]`},
		{name: "unknown errno", isolators: `[{"name":"os/linux/seccomp-remove-set","value":{"errno":"EFLY","set":["uname"]}}]`},
		{name: "@appc.io/all in a remove-set", isolators: `[{"name":"os/linux/seccomp-remove-set","value":{"set":["@appc.io/all"]}}]`},
		{name: "zero memory limit", isolators: `[{"name":"resource/memory","value":{"limit":"0"}}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := PolicyFor(appWith(t, tt.isolators), Options{})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("PolicyFor: %v, want invalid argument", err)
			}
		})
	}
	if _, _, err := PolicyFor(nil, Options{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("PolicyFor(nil): %v", err)
	}
}

// TestSameAppSamePolicy pins the property run, enter and app exec rely
// on: the policy depends on the app and the flags only.
func TestSameAppSamePolicy(t *testing.T) {
	iso := `[{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_CHOWN"]}},
		{"name":"os/linux/seccomp-remove-set","value":{"errno":"EPERM","set":["uname"]}},
		{"name":"os/linux/no-new-privileges","value":true}]`
	a, _, err := PolicyFor(appWith(t, iso), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := PolicyFor(appWith(t, iso), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("two calls disagree:\n%s\n%s", ja, jb)
	}
}

func wantFilter(mode seccomp.Mode, errno string, some ...string) func(*testing.T, *seccomp.Filter) {
	return func(t *testing.T, f *seccomp.Filter) {
		t.Helper()
		if f == nil {
			t.Fatalf("no seccomp filter, want %s", mode)
		}
		if f.Mode != mode || f.Errno != errno {
			t.Fatalf("filter %s/%q, want %s/%q", f.Mode, f.Errno, mode, errno)
		}
		for _, s := range some {
			if !strings.Contains(","+strings.Join(f.Syscalls, ",")+",", ","+s+",") {
				t.Fatalf("filter lacks %s: %v", s, f.Syscalls)
			}
		}
	}
}

func wantNoFilter(t *testing.T, f *seccomp.Filter) {
	t.Helper()
	if f != nil {
		t.Fatalf("seccomp filter %+v, want none", f)
	}
}

func intp(n int) *int { return &n }

func reportText(r Report) string {
	var b strings.Builder
	for _, e := range r {
		b.WriteString(e.String() + "\n")
	}
	return b.String()
}

// TestPolicyForAgreesWithFromIsolators checks that the bounding set stage0
// asks consent for (caps.FromIsolators) is the one PolicyFor enforces.
func TestPolicyForAgreesWithFromIsolators(t *testing.T) {
	tests := []struct {
		name, isolators string
	}{
		{name: "none", isolators: `[]`},
		{name: "retain beyond the default", isolators: `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_SYS_ADMIN","CAP_CHOWN"]}}]`},
		{name: "remove", isolators: `[{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_MKNOD","CAP_NET_ADMIN"]}}]`},
		{name: "repeated retain", isolators: `[
			{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_SYS_ADMIN"]}},
			{"name":"os/linux/oom-score-adj","value":5},
			{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_KILL"]}}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := appWith(t, tt.isolators)
			p, _, err := PolicyFor(app, Options{})
			if err != nil {
				t.Fatal(err)
			}
			want, _, err := caps.FromIsolators(app.Isolators)
			if err != nil {
				t.Fatal(err)
			}
			if p.Caps == nil || p.Caps.Bounding != want {
				t.Fatalf("PolicyFor bounding set %v, FromIsolators %s", p.Caps, want)
			}
		})
	}
}
