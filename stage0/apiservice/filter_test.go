package apiservice

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
	"github.com/nosecone/nscn/internal/errdefs"
)

const (
	idA = "sha512-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + "1111111111111111111111111111111111111111111111111111111111111111"
	idB = "sha512-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" + "2222222222222222222222222222222222222222222222222222222222222222"
)

func kv(k, v string) *v1alpha.KeyValue { return &v1alpha.KeyValue{Key: k, Value: v} }

func testPod() *v1alpha.Pod {
	return &v1alpha.Pod{
		Id:    "6a3f8b2c-0000-4000-8000-000000000001",
		State: v1alpha.PodState_POD_STATE_RUNNING,
		Apps: []*v1alpha.App{
			{Name: "web", Image: &v1alpha.Image{Id: idA}},
			{Name: "db", Image: &v1alpha.Image{Id: idB}},
		},
		Networks:    []*v1alpha.Network{{Name: "default", Ipv4: "172.16.28.2"}},
		Annotations: []*v1alpha.KeyValue{kv("team", "infra"), kv("tier", "back")},
		Cgroup:      "/machine.slice/nscn-6a3f.scope",
	}
}

func TestPodSelected(t *testing.T) {
	running := v1alpha.PodState_POD_STATE_RUNNING
	exited := v1alpha.PodState_POD_STATE_EXITED
	tests := []struct {
		name    string
		filters []*v1alpha.PodFilter
		want    bool
	}{
		{name: "no filter", want: true},
		{name: "empty filter", filters: []*v1alpha.PodFilter{{}}, want: true},
		{name: "id", filters: []*v1alpha.PodFilter{{Ids: []string{"other", "6A3F8B2C-0000-4000-8000-000000000001"}}}, want: true},
		{name: "other id", filters: []*v1alpha.PodFilter{{Ids: []string{"6a3f8b2c"}}}, want: false},
		{name: "any state", filters: []*v1alpha.PodFilter{{States: []v1alpha.PodState{exited, running}}}, want: true},
		{name: "other state", filters: []*v1alpha.PodFilter{{States: []v1alpha.PodState{exited}}}, want: false},
		{name: "all apps", filters: []*v1alpha.PodFilter{{AppNames: []string{"db", "web"}}}, want: true},
		{name: "an app missing", filters: []*v1alpha.PodFilter{{AppNames: []string{"web", "cache"}}}, want: false},
		{name: "image full ID and key", filters: []*v1alpha.PodFilter{{ImageIds: []string{idA, idB[:len("sha512-")+64]}}}, want: true},
		{name: "image prefix", filters: []*v1alpha.PodFilter{{ImageIds: []string{"SHA512-AAAA"}}}, want: true},
		{name: "bare sha512- names no image", filters: []*v1alpha.PodFilter{{ImageIds: []string{"sha512-"}}}, want: false},
		{name: "an image missing", filters: []*v1alpha.PodFilter{{ImageIds: []string{idA, "sha512-cc"}}}, want: false},
		{name: "network", filters: []*v1alpha.PodFilter{{NetworkNames: []string{"default"}}}, want: true},
		{name: "a network missing", filters: []*v1alpha.PodFilter{{NetworkNames: []string{"default", "other"}}}, want: false},
		{name: "annotations", filters: []*v1alpha.PodFilter{{Annotations: []*v1alpha.KeyValue{kv("tier", "back"), kv("team", "infra")}}}, want: true},
		{name: "annotation value differs", filters: []*v1alpha.PodFilter{{Annotations: []*v1alpha.KeyValue{kv("tier", "front")}}}, want: false},
		{name: "cgroup", filters: []*v1alpha.PodFilter{{Cgroups: []string{"/machine.slice/nscn-6a3f.scope"}}}, want: true},
		{name: "other cgroup", filters: []*v1alpha.PodFilter{{Cgroups: []string{"/machine.slice"}}}, want: false},
		{name: "sub-cgroup", filters: []*v1alpha.PodFilter{{PodSubCgroups: []string{"/x", "/machine.slice/nscn-6a3f.scope/system.slice/app-web.service"}}}, want: true},
		{name: "sibling is no sub-cgroup", filters: []*v1alpha.PodFilter{{PodSubCgroups: []string{"/machine.slice/nscn-6a3f.scope2"}}}, want: false},
		{
			name: "conditions of one filter are and'ed",
			filters: []*v1alpha.PodFilter{{
				States: []v1alpha.PodState{running}, AppNames: []string{"web"}, NetworkNames: []string{"other"},
			}},
			want: false,
		},
		{
			name: "filters are or'ed",
			filters: []*v1alpha.PodFilter{
				{States: []v1alpha.PodState{exited}},
				{AppNames: []string{"web"}},
			},
			want: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := podSelected(tt.filters, testPod()); got != tt.want {
				t.Errorf("podSelected = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPodWithoutCgroup(t *testing.T) {
	p := testPod()
	p.Cgroup = ""
	for _, f := range []*v1alpha.PodFilter{{Cgroups: []string{""}}, {PodSubCgroups: []string{"/"}}} {
		if podMatches(f, p) {
			t.Errorf("a pod without a cgroup matches %v", f)
		}
	}
}

func TestImageSelected(t *testing.T) {
	im := &v1alpha.Image{
		Id:              idA,
		Name:            "example.com/etcd",
		ImportTimestamp: 1000,
		Labels:          []*v1alpha.KeyValue{kv("arch", "amd64"), kv("os", "linux"), kv("version", "3.5")},
		Annotations:     []*v1alpha.KeyValue{kv("authors", "ops")},
	}
	tests := []struct {
		name    string
		filters []*v1alpha.ImageFilter
		want    bool
	}{
		{name: "no filter", want: true},
		{name: "full ID", filters: []*v1alpha.ImageFilter{{Ids: []string{idB, idA}}}, want: true},
		{name: "store key", filters: []*v1alpha.ImageFilter{{Ids: []string{idA[:len("sha512-")+64]}}}, want: true},
		{name: "other ID", filters: []*v1alpha.ImageFilter{{Ids: []string{idB}}}, want: false},
		{name: "prefix", filters: []*v1alpha.ImageFilter{{Prefixes: []string{"other.org/", "example.com/"}}}, want: true},
		{name: "other prefix", filters: []*v1alpha.ImageFilter{{Prefixes: []string{"etcd"}}}, want: false},
		{name: "base name", filters: []*v1alpha.ImageFilter{{BaseNames: []string{"etcd"}}}, want: true},
		{name: "base name is whole", filters: []*v1alpha.ImageFilter{{BaseNames: []string{"etc"}}}, want: false},
		{name: "keyword", filters: []*v1alpha.ImageFilter{{Keywords: []string{"zzz", "le.co"}}}, want: true},
		{name: "no keyword", filters: []*v1alpha.ImageFilter{{Keywords: []string{"backup"}}}, want: false},
		{name: "full name", filters: []*v1alpha.ImageFilter{{FullNames: []string{"example.com/etcd"}}}, want: true},
		{name: "full name is exact", filters: []*v1alpha.ImageFilter{{FullNames: []string{"example.com/etc"}}}, want: false},
		{name: "labels", filters: []*v1alpha.ImageFilter{{Labels: []*v1alpha.KeyValue{kv("os", "linux"), kv("version", "3.5")}}}, want: true},
		{name: "a label differs", filters: []*v1alpha.ImageFilter{{Labels: []*v1alpha.KeyValue{kv("os", "linux"), kv("arch", "arm64")}}}, want: false},
		{name: "annotation", filters: []*v1alpha.ImageFilter{{Annotations: []*v1alpha.KeyValue{kv("authors", "ops")}}}, want: true},
		{name: "annotation missing", filters: []*v1alpha.ImageFilter{{Annotations: []*v1alpha.KeyValue{kv("homepage", "x")}}}, want: false},
		{name: "imported after", filters: []*v1alpha.ImageFilter{{ImportedAfter: 999}}, want: true},
		{name: "not imported after itself", filters: []*v1alpha.ImageFilter{{ImportedAfter: 1000}}, want: false},
		{name: "imported before", filters: []*v1alpha.ImageFilter{{ImportedBefore: 1001}}, want: true},
		{name: "not imported before itself", filters: []*v1alpha.ImageFilter{{ImportedBefore: 1000}}, want: false},
		{name: "window", filters: []*v1alpha.ImageFilter{{ImportedAfter: 500, ImportedBefore: 1500}}, want: true},
		{
			name:    "and'ed within a filter",
			filters: []*v1alpha.ImageFilter{{BaseNames: []string{"etcd"}, Labels: []*v1alpha.KeyValue{kv("os", "darwin")}}},
			want:    false,
		},
		{
			name:    "or'ed across filters",
			filters: []*v1alpha.ImageFilter{{Keywords: []string{"nginx"}}, {BaseNames: []string{"etcd"}}},
			want:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := imageSelected(tt.filters, im); got != tt.want {
				t.Errorf("imageSelected = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEventSelected(t *testing.T) {
	e := &v1alpha.Event{Type: v1alpha.EventType_EVENT_TYPE_APP_EXITED, Id: "pod-1", From: "web"}
	tests := []struct {
		name   string
		filter *v1alpha.EventFilter
		want   bool
	}{
		{name: "nil", want: true},
		{name: "type", filter: &v1alpha.EventFilter{Types: []v1alpha.EventType{v1alpha.EventType_EVENT_TYPE_POD_EXITED, v1alpha.EventType_EVENT_TYPE_APP_EXITED}}, want: true},
		{name: "other type", filter: &v1alpha.EventFilter{Types: []v1alpha.EventType{v1alpha.EventType_EVENT_TYPE_POD_EXITED}}, want: false},
		{name: "id and name", filter: &v1alpha.EventFilter{Ids: []string{"pod-1"}, Names: []string{"web"}}, want: true},
		{name: "other name", filter: &v1alpha.EventFilter{Ids: []string{"pod-1"}, Names: []string{"db"}}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := eventSelected(tt.filter, e); got != tt.want {
				t.Errorf("eventSelected = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseCgroup(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "unified", in: "0::/machine.slice/x.scope\n", want: "/machine.slice/x.scope"},
		{name: "hybrid prefers unified", in: "12:cpu,cpuacct:/a\n1:name=systemd:/sys\n0::/uni\n", want: "/uni"},
		{name: "v1 name=systemd", in: "4:memory:/m\n1:name=systemd:/machine.slice/y.scope\n", want: "/machine.slice/y.scope"},
		{name: "garbage", in: "nonsense\n", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseCgroup([]byte(tt.in)); got != tt.want {
				t.Errorf("parseCgroup = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseCgroup(f *testing.F) {
	for _, s := range []string{"0::/machine.slice/x.scope\n", "1:name=systemd:/a\n0::/b\n", "::\n", "0:", "12:cpu,cpuacct:/x\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := parseCgroup(b)
		if strings.Contains(got, "\n") {
			t.Fatalf("parseCgroup(%q) = %q holds a newline", b, got)
		}
	})
}

func TestGRPCError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{name: "not found", err: fmt.Errorf("get pod: %w", errdefs.NotFound("no pod")), want: codes.NotFound},
		{name: "invalid", err: errdefs.InvalidArgument("ambiguous"), want: codes.InvalidArgument},
		{name: "precondition", err: errdefs.FailedPrecondition("no logs"), want: codes.FailedPrecondition},
		{name: "permission", err: fmt.Errorf("pod x: %w", &fs.PathError{Op: "lstat", Path: "journal", Err: fs.ErrPermission}), want: codes.PermissionDenied},
		{name: "canceled", err: fmt.Errorf("list pods: %w", context.Canceled), want: codes.Canceled},
		{name: "other", err: errors.New("disk on fire"), want: codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := grpcError(tt.err)
			if status.Code(err) != tt.want || !strings.Contains(err.Error(), tt.err.Error()) {
				t.Errorf("grpcError = %v, want code %v and the message", err, tt.want)
			}
		})
	}
	if grpcError(nil) != nil {
		t.Error("grpcError(nil) is not nil")
	}
}
