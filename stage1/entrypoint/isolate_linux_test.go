package entrypoint

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/stage1-fly/fly"
	"github.com/nosecone/nscn/stage1/nspawn"
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

func testPod() *nspawn.Pod {
	limited := &isolate.Policy{Cgroup: cgroup.Limits{MemoryMax: 1 << 26}}
	return &nspawn.Pod{UUID: "u", Apps: []nspawn.App{
		{Spec: fly.AppSpec{Name: "a"}, Policy: limited},
		{Spec: fly.AppSpec{Name: "free"}, Policy: &isolate.Policy{}},
		{Spec: fly.AppSpec{Name: "b"}, Policy: limited},
	}}
}

func TestCreateAppCgroups(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	t.Run("v1", func(t *testing.T) {
		m := &fakeManager{version: 1}
		dirs, groups, err := createAppCgroups(ctx, log, func() (cgroup.Manager, error) { return m, nil }, testPod(), io.Discard)
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
		_, groups, err := createAppCgroups(ctx, log, func() (cgroup.Manager, error) { return m, nil }, testPod(), io.Discard)
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "app b") || groups != nil {
			t.Fatalf("err %v groups %v", err, groups)
		}
		if !reflect.DeepEqual(m.destroyed, []string{"nscn/u/a"}) {
			t.Fatalf("destroyed %v, want a's group", m.destroyed)
		}
	})
	t.Run("v2 says it ignores the limits", func(t *testing.T) {
		m := &fakeManager{version: 2}
		var stderr bytes.Buffer
		dirs, _, err := createAppCgroups(ctx, log, func() (cgroup.Manager, error) { return m, nil }, testPod(), &stderr)
		if err != nil || len(dirs) != 0 || len(m.created) != 0 {
			t.Fatalf("dirs %v created %v err %v", dirs, m.created, err)
		}
		if strings.Count(stderr.String(), "resource limits ignored") != 2 {
			t.Fatalf("stderr %q, want one line per limited app", stderr.String())
		}
	})
	t.Run("no limits opens nothing", func(t *testing.T) {
		pod := &nspawn.Pod{UUID: "u", Apps: []nspawn.App{{Spec: fly.AppSpec{Name: "free"}, Policy: &isolate.Policy{}}}}
		dirs, _, err := createAppCgroups(ctx, log, func() (cgroup.Manager, error) { return nil, errors.New("opened") }, pod, io.Discard)
		if err != nil || len(dirs) != 0 {
			t.Fatalf("dirs %v err %v", dirs, err)
		}
	})
}
