//go:build functional && nspawn

package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
)

// TestAPINspawnPod: an nspawn pod of two apps on the default network is
// listed and inspected with filters while it runs (apps, network,
// cgroup, pid) and after it exited (each app's exit code); its logs are
// followed while it runs, until it exits, and read again afterwards; its
// lifecycle is seen as events up to its garbage collection.
func TestAPINspawnPod(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	s := startAPI(t, e, "")
	events := s.listen(t, nil)
	p := startHeldPod(t, e, []string{"--insecure-options=image", "run", "--net=default", "--stage1-path=" + nspawnACI(t)},
		heldApp{name: "web", say: "echo web-up; i=0; (while :; do i=$((i+1)); echo tick-$i; sleep 0.2; done) & sleep 0", code: 0},
		heldApp{name: "db", say: "echo db-up; echo db-err >&2", code: 3})
	u := p.uuid

	running := s.waitPodState(t, u, v1alpha.PodState_POD_STATE_RUNNING)
	if got := appStates(running); fmt.Sprint(got) != "map[db:RUNNING web:RUNNING]" {
		t.Errorf("apps of the running pod: %v", got)
	}
	if len(running.Networks) != 1 || running.Networks[0].Name != "default" || !strings.HasPrefix(running.Networks[0].Ipv4, "172.16.28.") {
		t.Errorf("networks of the running pod: %v", running.Networks)
	}
	if running.Cgroup == "" || running.Pid <= 0 || running.StartedAt <= 0 || len(running.Manifest) == 0 {
		t.Errorf("running pod: cgroup %q, pid %d, started %d, manifest %d bytes", running.Cgroup, running.Pid, running.StartedAt, len(running.Manifest))
	}
	// The pod's cgroup is the one its stage1 made, for the pod's whole
	// life: systemd-nspawn moves its own processes below it as it
	// starts, so a cgroup read from a process would change under a
	// client's feet.
	if want := "/nscn/" + u; running.Cgroup != want {
		t.Errorf("cgroup of the running pod: %q, want %q", running.Cgroup, want)
	}
	webCgroup := appCgroup(t, u, "web")
	imageID := running.Apps[0].Image.GetId()
	for _, tt := range []struct {
		name   string
		filter *v1alpha.PodFilter
		want   bool
	}{
		{name: "both apps", filter: &v1alpha.PodFilter{AppNames: []string{"web", "db"}}, want: true},
		{name: "network", filter: &v1alpha.PodFilter{NetworkNames: []string{"default"}, States: []v1alpha.PodState{v1alpha.PodState_POD_STATE_RUNNING}}, want: true},
		{name: "another network", filter: &v1alpha.PodFilter{NetworkNames: []string{"default", "other"}}, want: false},
		{name: "image", filter: &v1alpha.PodFilter{ImageIds: []string{imageID}}, want: true},
		{name: "cgroup", filter: &v1alpha.PodFilter{Cgroups: []string{running.Cgroup}}, want: true},
		{name: "an app's cgroup", filter: &v1alpha.PodFilter{PodSubCgroups: []string{webCgroup}}, want: true},
		{name: "a cgroup beside the pod's", filter: &v1alpha.PodFilter{PodSubCgroups: []string{running.Cgroup + "x/payload"}}, want: false},
		{name: "another cgroup", filter: &v1alpha.PodFilter{Cgroups: []string{running.Cgroup + "x"}}, want: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := slices.Contains(s.podIDs(t, tt.filter), u); got != tt.want {
				t.Errorf("pod listed: %v, want %v", got, tt.want)
			}
		})
	}
	// Without detail: no manifest, and the apps' images by ID only.
	list, err := s.client.ListPods(callCtx(t), &v1alpha.ListPodsRequest{Filters: []*v1alpha.PodFilter{{Ids: []string{u}}}})
	if err != nil || len(list.Pods) != 1 {
		t.Fatalf("ListPods by ID: %v, %v", list, err)
	}
	if lp := list.Pods[0]; lp.Manifest != nil || lp.Apps[0].Image.Name != "" || lp.Apps[0].Image.Id != imageID {
		t.Errorf("ListPods without detail: %v", lp)
	}

	// Follow web's log while it runs: lines arrive before the pod ends,
	// and the stream ends with it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := s.client.GetLogs(ctx, &v1alpha.GetLogsRequest{PodId: u, AppName: "web", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		followed []string
		ended    = make(chan error, 1)
	)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				ended <- err
				return
			}
			mu.Lock()
			followed = append(followed, r.Lines...)
			mu.Unlock()
		}
	}()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := len(followed)
		mu.Unlock()
		if n >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("followed log lines of the running pod: %q", followed)
		}
	}
	select {
	case err := <-ended:
		t.Fatalf("the followed log ended while the pod runs: %v", err)
	default:
	}

	// web ends first, with 0: the pod runs on (an app that fails ends
	// it, and stops the others: Documentation/stage1-flavors.md).
	p.release(t, "web")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		r, err := s.client.InspectPod(callCtx(t), &v1alpha.InspectPodRequest{Id: u})
		if err != nil {
			t.Fatal(err)
		}
		got := appStates(r.Pod)
		if r.Pod.State == v1alpha.PodState_POD_STATE_RUNNING && fmt.Sprint(got) == "map[db:RUNNING web:EXITED 0]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after web ended: pod %v, apps %v", r.Pod.State, got)
		}
	}
	select {
	case err := <-ended:
		t.Fatalf("the followed log ended while the pod runs: %v", err)
	default:
	}
	p.release(t, "db")
	p.wait(t)
	select {
	case err := <-ended:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("the followed log ended with %v, want its end", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the followed log did not end with the pod")
	}
	if followed[0] != "web-up" || !slices.Contains(followed, "tick-1") || followed[len(followed)-1] != "bye-web" {
		t.Errorf("followed log: %q", followed)
	}

	exited := s.waitPodState(t, u, v1alpha.PodState_POD_STATE_EXITED)
	if got := appStates(exited); fmt.Sprint(got) != "map[db:EXITED 3 web:EXITED 0]" {
		t.Errorf("apps of the exited pod: %v", got)
	}
	if len(exited.Networks) != 0 || exited.Pid != 0 {
		t.Errorf("exited pod: networks %v, pid %d", exited.Networks, exited.Pid)
	}
	// The logs of the exited pod: every app's, prefixed; the last line.
	all, err := drainLogsErr(t, s, &v1alpha.GetLogsRequest{PodId: u})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[web] web-up", "[web] tick-1", "[db] db-up", "[db] db-err", "[db] bye-db", "[web] bye-web"} {
		if !slices.Contains(all, want) {
			t.Errorf("logs of the exited pod lack %q: %q", want, all)
		}
	}
	// db's stdout and stderr lines before bye-db may come in either
	// order: they are two streams.
	if last, err := drainLogsErr(t, s, &v1alpha.GetLogsRequest{PodId: u[:8], AppName: "db", Lines: 2}); err != nil || len(last) != 2 || last[1] != "bye-db" {
		t.Errorf("last 2 lines of db: %q, %v", last, err)
	}
	if none, err := drainLogsErr(t, s, &v1alpha.GetLogsRequest{PodId: u, SinceTime: time.Now().Add(time.Hour).Unix()}); err != nil || len(none) != 0 {
		t.Errorf("logs since an hour from now: %q, %v", none, err)
	}

	events.waitFor(t, "POD_CREATED "+u, "POD_STARTED "+u, "APP_STARTED "+u+" web", "APP_STARTED "+u+" db",
		"APP_EXITED "+u+" web exit-code=0", "APP_EXITED "+u+" db exit-code=3", "POD_EXITED "+u)
	e.ok("gc", "--grace-period=0s")
	events.waitFor(t, "POD_EXITED "+u, "POD_GARBAGE_COLLECTED "+u)
	// netGC looks for processes of the data directory: the service is one.
	s.stop(t)
	netGC(t, e)
	requireNetRestored(t, e, before)
}

// TestAPINspawnAsGroupMember: a service in the nscn group reads an exited
// nspawn pod, but not what stays root's (Documentation/security.md): its
// journal (GetLogs is PermissionDenied) and its apps' exit statuses in
// the stage1's root (the app is listed without a state).
func TestAPINspawnAsGroupMember(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is missing")
	}
	e := newEnv(t)
	const gid = 47811
	r := e.nspawnSh("echo hello")
	if r.code != 0 {
		t.Fatalf("run: %d %s", r.code, r.stderr)
	}
	u := nspawnOnlyPod(t, e)
	giveToGroup(t, e.dir, gid)
	for d := filepath.Dir(e.dir); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil { //nolint:gosec // G302: traversal only
			t.Fatal(err)
		}
	}
	s := startAPI(t, e, "", "setpriv", "--reuid=65534", "--regid=65534", "--groups="+strconv.Itoa(gid), "--inh-caps=-all", "--")
	in, err := s.client.InspectPod(callCtx(t), &v1alpha.InspectPodRequest{Id: u})
	if err != nil {
		t.Fatal(err)
	}
	if in.Pod.State != v1alpha.PodState_POD_STATE_EXITED || len(in.Pod.Apps) != 1 || in.Pod.Apps[0].State != v1alpha.AppState_APP_STATE_UNDEFINED {
		t.Errorf("InspectPod as a group member = %v", in.Pod)
	}
	if _, err := drainLogsErr(t, s, &v1alpha.GetLogsRequest{PodId: u}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetLogs of a journal as a group member: %v, want PermissionDenied", err)
	}
	// As root, the same pod's log and exit status.
	root := startAPI(t, e, "")
	if lines, err := drainLogsErr(t, root, &v1alpha.GetLogsRequest{PodId: u}); err != nil || !slices.Contains(lines, "hello") {
		t.Errorf("GetLogs as root: %q, %v", lines, err)
	}
	in, err = root.client.InspectPod(callCtx(t), &v1alpha.InspectPodRequest{Id: u})
	if err != nil || fmt.Sprint(appStates(in.Pod)) != "map[busybox:EXITED 0]" {
		t.Errorf("InspectPod as root: %v, %v", in.GetPod(), err)
	}
}

// appCgroup is the cgroup, in the unified hierarchy, of a process of
// an nspawn app: the one of some process whose cgroup is named for the
// app's unit and holds the pod's UUID, within 30 s.
func appCgroup(t *testing.T, uuid, app string) string {
	t.Helper()
	// A running pod's apps may not have started yet.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
		for _, f := range procs {
			b, err := os.ReadFile(f) //nolint:gosec // G304: a /proc file
			if err != nil {
				continue // gone
			}
			for _, l := range strings.Split(string(b), "\n") {
				if c, ok := strings.CutPrefix(l, "0::"); ok && strings.Contains(c, "/"+uuid+"/") && strings.HasSuffix(c, "/app-"+app+".service") {
					return c
				}
			}
		}
	}
	t.Fatalf("no process of app %s of pod %s in the unified hierarchy", app, uuid)
	return ""
}
