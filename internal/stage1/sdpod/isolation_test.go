package sdpod

import (
	"errors"
	"reflect"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/stage1/appspec"
)

func TestCgroupHierarchy(t *testing.T) {
	tests := []struct {
		name, dir, app, want string
	}{
		{name: "memory", dir: "/sys/fs/cgroup/memory/user.slice/nscn/" + testUUID + "/web", app: "web", want: "memory"},
		{name: "joint hierarchy at the root", dir: "/sys/fs/cgroup/cpu,cpuacct/nscn/" + testUUID + "/web", app: "web", want: "cpu,cpuacct"},
		{name: "other app", dir: "/sys/fs/cgroup/memory/nscn/" + testUUID + "/db", app: "web"},
		{name: "other pod", dir: "/sys/fs/cgroup/memory/nscn/00000000-3b7d-4e0a-9c1e-2a5b4c3d2e1f/web", app: "web"},
		{name: "outside cgroupfs", dir: "/etc/nscn/" + testUUID + "/web", app: "web"},
		{name: "dot dot", dir: "/sys/fs/cgroup/../../etc/nscn/" + testUUID + "/web", app: "web"},
		{name: "no hierarchy", dir: "/sys/fs/cgroup//nscn/" + testUUID + "/web", app: "web"},
		{name: "bad app name", dir: "/sys/fs/cgroup/memory/nscn/" + testUUID + "/../x", app: "../x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CgroupHierarchy(tt.dir, testUUID, tt.app)
			if tt.want == "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("CgroupHierarchy(%q) = %q, %v; want an invalid argument", tt.dir, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CgroupHierarchy(%q) = %q, %v; want %q", tt.dir, got, err, tt.want)
			}
		})
	}
}

func TestParseIsolation(t *testing.T) {
	good := `{"options":{"DisableSeccomp":true},"cgroups":{"web":["/sys/fs/cgroup/memory/nscn/` + testUUID + `/web"]}}`
	iso, err := ParseIsolation([]byte(good), testUUID)
	if err != nil {
		t.Fatal(err)
	}
	if !iso.Options.DisableSeccomp || iso.Options.DisablePaths || len(iso.Cgroups["web"]) != 1 {
		t.Fatalf("parsed %+v", iso)
	}
	for _, bad := range []string{
		`{not json`,
		`{"cgroups":{"web":["/sys/fs/cgroup/memory/nscn/` + testUUID + `/db"]}}`,
		`{"cgroups":{"web":["/proc/1/root/sys/fs/cgroup/memory/nscn/` + testUUID + `/web"]}}`,
	} {
		if _, err := ParseIsolation([]byte(bad), testUUID); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseIsolation(%s) = %v, want invalid argument", bad, err)
		}
	}
}

func TestCgroupBinds(t *testing.T) {
	pod := &Pod{UUID: testUUID, Apps: []App{{Spec: appspec.AppSpec{Name: "web"}}, {Spec: appspec.AppSpec{Name: "db"}}}}
	iso := &Isolation{Cgroups: map[string][]string{"web": {
		"/sys/fs/cgroup/cpu,cpuacct/nscn/" + testUUID + "/web",
		"/sys/fs/cgroup/memory/a/nscn/" + testUUID + "/web",
	}}}
	binds, err := CgroupBinds(pod, iso)
	if err != nil {
		t.Fatal(err)
	}
	want := []Bind{
		{Source: "/sys/fs/cgroup/cpu,cpuacct/nscn/" + testUUID + "/web", Target: "/nscn/cgroup/web/cpu,cpuacct"},
		{Source: "/sys/fs/cgroup/memory/a/nscn/" + testUUID + "/web", Target: "/nscn/cgroup/web/memory"},
	}
	if !reflect.DeepEqual(binds, want) {
		t.Fatalf("binds %+v, want %+v", binds, want)
	}
	if got := pod.Apps[0].Cgroups; !reflect.DeepEqual(got, map[string]string{"cpu,cpuacct": "/nscn/cgroup/web/cpu,cpuacct", "memory": "/nscn/cgroup/web/memory"}) {
		t.Fatalf("web's cgroups %v", got)
	}
	if pod.Apps[1].Cgroups != nil {
		t.Fatalf("db has no limits but cgroups %v", pod.Apps[1].Cgroups)
	}
}

func TestAppReportSummary(t *testing.T) {
	tests := []struct {
		name   string
		report isolate.Report
		want   string
	}{
		{name: "defaults only", report: isolate.Report{{Name: "capabilities", Status: isolate.Default}}, want: ""},
		{name: "enforced and ignored", report: isolate.Report{
			{Name: "resource/memory", Status: isolate.Enforced, Detail: "limit 1"},
			{Name: "os/linux/seccomp-retain-set", Status: isolate.Modified, Detail: "added exit"},
			{Name: "os/unix/sysctl", Status: isolate.Ignored, Detail: "sysctls are not implemented"},
			{Name: "paths", Status: isolate.Default},
		}, want: "app web: isolators enforced: resource/memory, os/linux/seccomp-retain-set (modified: added exit); ignored: os/unix/sysctl (sysctls are not implemented)"},
		{
			name: "ignored only", report: isolate.Report{{Name: "x/y", Status: isolate.Ignored, Detail: "unknown isolator"}},
			want: "app web: isolators ignored: x/y (unknown isolator)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (AppReport{App: "web", Report: tt.report}).Summary(); got != tt.want {
				t.Fatalf("Summary() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}
