package entrypoint

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// fakeManager records what createAppCgroups asks of a cgroup.Manager.
type fakeManager struct {
	version   int
	created   []string
	destroyed []string
	failOn    string
}

var _ cgroup.Manager = (*fakeManager)(nil)

func (m *fakeManager) Version() int { return m.version }

func (m *fakeManager) Create(_ context.Context, name string, _ cgroup.Limits) (cgroup.Group, error) {
	if name == m.failOn {
		return nil, errdefs.Unavailable("no memory controller")
	}
	m.created = append(m.created, name)
	return fakeGroup{m: m, name: name}, nil
}

type fakeGroup struct {
	m    *fakeManager
	name string
}

func (g fakeGroup) Add(int) error { return nil }
func (g fakeGroup) Dirs() []string {
	return []string{"/sys/fs/cgroup/memory/" + g.name}
}

func (g fakeGroup) Destroy(context.Context) error {
	g.m.destroyed = append(g.m.destroyed, g.name)
	return nil
}

func testPod() *sdpod.Pod {
	limited := &isolate.Policy{Cgroup: cgroup.Limits{MemoryMax: 1 << 26}}
	return &sdpod.Pod{UUID: "u", Apps: []sdpod.App{
		{Spec: appspec.AppSpec{Name: "a"}, Policy: limited},
		{Spec: appspec.AppSpec{Name: "free"}, Policy: &isolate.Policy{}},
		{Spec: appspec.AppSpec{Name: "b"}, Policy: limited},
	}}
}

// noAvailable is the host's controllers for a test that must not ask.
func noAvailable() (string, error) { return "", errors.New("asked for the host's controllers") }

func TestCreateAppCgroups(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	t.Run("v1", func(t *testing.T) {
		m := &fakeManager{version: 1}
		dirs, groups, err := createAppCgroups(ctx, log, func() (cgroup.Manager, error) { return m, nil }, noAvailable, testPod(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{"a": {"/sys/fs/cgroup/memory/nscn/u/a"}, "b": {"/sys/fs/cgroup/memory/nscn/u/b"}}
		if !reflect.DeepEqual(dirs, want) || len(groups) != 2 || !reflect.DeepEqual(m.created, []string{"nscn/u/a", "nscn/u/b"}) {
			t.Fatalf("dirs %v groups %d created %v", dirs, len(groups), m.created)
		}
	})
	t.Run("failure undoes", func(t *testing.T) {
		m := &fakeManager{version: 1, failOn: "nscn/u/b"}
		_, groups, err := createAppCgroups(ctx, log, func() (cgroup.Manager, error) { return m, nil }, noAvailable, testPod(), io.Discard)
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "app b") || groups != nil {
			t.Fatalf("err %v groups %v", err, groups)
		}
		if !reflect.DeepEqual(m.destroyed, []string{"nscn/u/a"}) {
			t.Fatalf("destroyed %v, want a's group", m.destroyed)
		}
	})
	t.Run("v2 leaves the limits to the units", func(t *testing.T) {
		pod := testPod()
		pod.CgroupUnified = true
		var stderr bytes.Buffer
		avail := func() (string, error) { return "cpu memory pids\n", nil }
		dirs, _, err := createAppCgroups(ctx, log, func() (cgroup.Manager, error) { return nil, errors.New("opened") }, avail, pod, &stderr)
		if err != nil || len(dirs) != 0 || stderr.Len() != 0 {
			t.Fatalf("dirs %v err %v stderr %q", dirs, err, stderr.String())
		}
		if pod.Apps[0].Policy.Cgroup.MemoryMax != 1<<26 || pod.Apps[2].Policy.Cgroup.MemoryMax != 1<<26 {
			t.Fatalf("limits dropped: %+v", pod.Apps)
		}
	})
	t.Run("v2 without the controller says it ignores the limits", func(t *testing.T) {
		pod := testPod()
		pod.CgroupUnified = true
		var stderr bytes.Buffer
		avail := func() (string, error) { return "cpu pids\n", nil }
		dirs, _, err := createAppCgroups(ctx, log, func() (cgroup.Manager, error) { return nil, errors.New("opened") }, avail, pod, &stderr)
		if err != nil || len(dirs) != 0 {
			t.Fatalf("dirs %v err %v", dirs, err)
		}
		if strings.Count(stderr.String(), "resource limits ignored: the host's unified cgroup hierarchy has no memory controller") != 2 {
			t.Fatalf("stderr %q, want one line per limited app", stderr.String())
		}
		if !pod.Apps[0].Policy.Cgroup.IsZero() {
			t.Fatalf("ignored limits still set: %+v", pod.Apps[0].Policy.Cgroup)
		}
	})
	t.Run("no limits opens nothing", func(t *testing.T) {
		pod := &sdpod.Pod{UUID: "u", Apps: []sdpod.App{{Spec: appspec.AppSpec{Name: "free"}, Policy: &isolate.Policy{}}}}
		dirs, _, err := createAppCgroups(ctx, log, func() (cgroup.Manager, error) { return nil, errors.New("opened") }, noAvailable, pod, io.Discard)
		if err != nil || len(dirs) != 0 {
			t.Fatalf("dirs %v err %v", dirs, err)
		}
	})
}

func TestCheckAppUnitCgroup(t *testing.T) {
	const pod = "/nscn/u/payload/init.scope"
	tests := []struct {
		name, pod, cg string
		ok            bool
	}{
		{name: "the app's unit", pod: pod, cg: "/nscn/u/payload/system.slice/app-web.service", ok: true},
		{name: "pod systemd not in init.scope", pod: "/nscn/u/payload", cg: "/nscn/u/payload/system.slice/app-web.service", ok: true},
		{name: "pod at the root", pod: "/init.scope", cg: "/system.slice/app-web.service", ok: true},
		{name: "another app's unit", pod: pod, cg: "/nscn/u/payload/system.slice/app-db.service"},
		{name: "outside the pod", pod: pod, cg: "/nscn/other/payload/system.slice/app-web.service"},
		{name: "a sibling with the pod's name as prefix", pod: pod, cg: "/nscn/u/payload2/app-web.service"},
		{name: "below the unit", pod: pod, cg: "/nscn/u/payload/system.slice/app-web.service/x"},
		{name: "not clean", pod: pod, cg: "/nscn/u/payload/../../x/app-web.service"},
		{name: "the pod's root itself", pod: pod, cg: "/nscn/u/payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkAppUnitCgroup(tt.pod, tt.cg, "web")
			if tt.ok && (err != nil || got != tt.cg) {
				t.Fatalf("checkAppUnitCgroup(%q, %q) = %q, %v", tt.pod, tt.cg, got, err)
			}
			if !tt.ok && !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("checkAppUnitCgroup(%q, %q) = %q, %v, want refused", tt.pod, tt.cg, got, err)
			}
		})
	}
}

func TestCheckHostOSRelease(t *testing.T) {
	dir := t.TempDir()
	a, b := dir+"/etc-os-release", dir+"/usr-lib-os-release"
	err := checkHostOSRelease([]string{a, b})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "systemd-nspawn needs") {
		t.Fatalf("no os-release: %v", err)
	}
	if err := os.WriteFile(b, []byte("ID=debian\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkHostOSRelease([]string{a, b}); err != nil {
		t.Fatalf("with %s: %v", b, err)
	}
}
