//go:build functional && fly

package tests

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
)

// TestAPIFlyPod: a fly pod is listed and inspected, with filters, while it
// runs and after it exited (its app's exit code), its lifecycle is seen as
// events up to its garbage collection, and GetLogs says that a fly pod
// records no logs.
func TestAPIFlyPod(t *testing.T) {
	e := newEnv(t)
	s := startAPI(t, e, "")
	events := s.listen(t, nil)
	p := startHeldPod(t, e, []string{"--insecure-options=image", "run", "--stage1-from-dir=stage1-fly.aci"},
		heldApp{name: "flyapp", say: "echo up", code: 7})
	u := p.uuid

	running := s.waitPodState(t, u, v1alpha.PodState_POD_STATE_RUNNING)
	if running.Pid <= 0 || running.StartedAt <= 0 || running.CreatedAt <= 0 || running.CreatedAt > running.StartedAt || len(running.Manifest) == 0 {
		t.Errorf("running fly pod = %v", running)
	}
	if got := appStates(running); fmt.Sprint(got) != "map[flyapp:RUNNING]" {
		t.Errorf("apps of the running pod: %v", got)
	}
	if len(running.Networks) != 0 {
		t.Errorf("a fly pod on the host's network has networks %v", running.Networks)
	}
	imageID := running.Apps[0].Image.GetId()
	if !strings.HasPrefix(imageID, "sha512-") || running.Apps[0].Image.GetName() != "nosecone.dev/busybox" {
		t.Errorf("the app's image: %v", running.Apps[0].Image)
	}
	for _, tt := range []struct {
		name   string
		filter *v1alpha.PodFilter
		want   bool
	}{
		{name: "id", filter: &v1alpha.PodFilter{Ids: []string{u}}, want: true},
		{name: "running", filter: &v1alpha.PodFilter{States: []v1alpha.PodState{v1alpha.PodState_POD_STATE_RUNNING}}, want: true},
		{name: "exited", filter: &v1alpha.PodFilter{States: []v1alpha.PodState{v1alpha.PodState_POD_STATE_EXITED}}, want: false},
		{name: "app", filter: &v1alpha.PodFilter{AppNames: []string{"flyapp"}}, want: true},
		{name: "other app", filter: &v1alpha.PodFilter{AppNames: []string{"flyapp", "db"}}, want: false},
		{name: "image", filter: &v1alpha.PodFilter{ImageIds: []string{imageID[:len("sha512-")+64]}}, want: true},
		{name: "network", filter: &v1alpha.PodFilter{NetworkNames: []string{"default"}}, want: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := slices.Contains(s.podIDs(t, tt.filter), u); got != tt.want {
				t.Errorf("pod listed: %v, want %v", got, tt.want)
			}
		})
	}

	_, err := drainLogsErr(t, s, &v1alpha.GetLogsRequest{PodId: u})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "records no app logs") {
		t.Errorf("GetLogs of a fly pod: %v, want FailedPrecondition", err)
	}

	p.release(t)
	p.wait(t)
	exited := s.waitPodState(t, u, v1alpha.PodState_POD_STATE_EXITED)
	if got := appStates(exited); fmt.Sprint(got) != "map[flyapp:EXITED 7]" {
		t.Errorf("apps of the exited pod: %v", got)
	}
	if exited.Pid != 0 || exited.Cgroup != "" {
		t.Errorf("an exited pod has pid %d, cgroup %q", exited.Pid, exited.Cgroup)
	}
	if got := s.podIDs(t, &v1alpha.PodFilter{States: []v1alpha.PodState{v1alpha.PodState_POD_STATE_EXITED}, AppNames: []string{"flyapp"}}); !slices.Equal(got, []string{u}) {
		t.Errorf("exited pods: %v", got)
	}

	// Seen exited before gc removes it: a pod that ends and is removed
	// between two looks has no exit codes to report.
	events.waitFor(t, "POD_CREATED "+u, "POD_STARTED "+u, "APP_STARTED "+u+" flyapp",
		"APP_EXITED "+u+" flyapp exit-code=7", "POD_EXITED "+u)
	e.ok("gc", "--grace-period=0s")
	events.waitFor(t, "POD_EXITED "+u, "POD_GARBAGE_COLLECTED "+u)
	if _, err := s.client.InspectPod(callCtx(t), &v1alpha.InspectPodRequest{Id: u}); status.Code(err) != codes.NotFound {
		t.Errorf("InspectPod of a removed pod: %v, want NotFound", err)
	}
}
