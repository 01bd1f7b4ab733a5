//go:build functional

package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
)

// apiService is an "nscn api-service" the test started, and a client of
// it on its Unix socket.
type apiService struct {
	cmd    *exec.Cmd
	socket string
	client v1alpha.PublicAPIClient
	stderr *testutil.SyncBuffer
	done   chan struct{}
	err    error
}

// apiPoll is the services' --poll-interval: events within a few tenths
// of a second keep the tests short.
const apiPoll = 100 * time.Millisecond

// startAPI runs "nscn api-service" on a Unix socket of its own (and on
// TCP at listen, "" for none), as the user the wrapper argv runs it as
// (nil: root), and returns once it answers GetInfo. It is stopped with
// SIGTERM when the test ends, if the test did not stop it.
func startAPI(t *testing.T, e *env, listen string, wrapper ...string) *apiService {
	t.Helper()
	dir := t.TempDir()
	if len(wrapper) > 0 {
		// The unprivileged service makes its socket here.
		if err := os.Chmod(dir, 0o1777); err != nil { //nolint:gosec // G302: a test directory, sticky
			t.Fatal(err)
		}
	}
	s := &apiService{socket: filepath.Join(dir, "api.sock"), stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	args := []string{"api-service", "--listen=" + listen, "--socket=" + s.socket, "--poll-interval=" + apiPoll.String()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	s.cmd = e.cmd(ctx, args...)
	if len(wrapper) > 0 {
		s.cmd.Args = append(slices.Clone(wrapper), s.cmd.Args...)
		s.cmd.Path = wrapper[0]
		if lp, err := exec.LookPath(wrapper[0]); err == nil {
			s.cmd.Path = lp
		}
		s.cmd.Err = nil
	}
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.stop(t) })
	conn, err := grpc.NewClient("unix://"+s.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	s.client = v1alpha.NewPublicAPIClient(conn)
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case <-s.done:
			t.Fatalf("api-service ended: %v\n%s", s.err, s.stderr.String())
		default:
		}
		if _, err := os.Stat(s.socket); err == nil {
			cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := s.client.GetInfo(cctx, &v1alpha.GetInfoRequest{})
			ccancel()
			if err == nil {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("api-service did not answer\n%s", s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and checks that the service exits 0 within its
// grace and removes its socket.
func (s *apiService) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("signal api-service: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("api-service did not stop on SIGTERM\n%s", s.stderr.String())
	}
	if s.err != nil {
		t.Errorf("api-service exited with %v after SIGTERM\n%s", s.err, s.stderr.String())
	}
	if _, err := os.Lstat(s.socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("api-service left its socket %s: %v", s.socket, err)
	}
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventLog collects the events of a ListenEvents stream.
type eventLog struct {
	mu     sync.Mutex
	events []*v1alpha.Event
}

// listen subscribes to every event of s until the test ends.
func (s *apiService) listen(t *testing.T, f *v1alpha.EventFilter) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := s.client.ListenEvents(ctx, &v1alpha.ListenEventsRequest{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	// The service sends its headers once the subscription is made.
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	l := &eventLog{}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.events = append(l.events, r.Events...)
			l.mu.Unlock()
		}
	}()
	return l
}

func eventString(e *v1alpha.Event) string {
	s := strings.TrimPrefix(e.Type.String(), "EVENT_TYPE_") + " " + e.Id
	if e.From != "" {
		s += " " + e.From
	}
	for _, d := range e.Data {
		s += " " + d.Key + "=" + d.Value
	}
	return s
}

// waitFor waits until the log holds each of want (eventString), in that
// order, and returns the log as strings.
func (l *eventLog) waitFor(t *testing.T, want ...string) []string {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		l.mu.Lock()
		got = got[:0]
		for _, e := range l.events {
			got = append(got, eventString(e))
		}
		l.mu.Unlock()
		if inOrder(got, want) {
			return got
		}
	}
	t.Fatalf("events %q\ndo not hold, in order, %q", got, want)
	return nil
}

// inOrder reports whether want is a subsequence of got.
func inOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// freePort returns a loopback TCP port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// TestAPIInfoImagesEventsShutdown: GetInfo over TCP and the Unix socket;
// images fetched and removed are listed, inspected, filtered and seen as
// events; SIGTERM stops the service, which removes its socket.
func TestAPIInfoImagesEventsShutdown(t *testing.T) {
	e := newEnv(t)
	// The service reads an existing store.
	busyKey := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", busybox(t)).stdout)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	s := startAPI(t, e, addr)
	events := s.listen(t, nil)

	info, err := s.client.GetInfo(callCtx(t), &v1alpha.GetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Info.ApiVersion != "1.0.0-alpha" || info.Info.AppcVersion == "" || info.Info.RktVersion == "" || info.Info.GlobalFlags.GetDir() != e.dir {
		t.Errorf("GetInfo = %v", info)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := v1alpha.NewPublicAPIClient(conn).GetInfo(callCtx(t), &v1alpha.GetInfoRequest{}); err != nil {
		t.Errorf("GetInfo over TCP %s: %v", addr, err)
	}

	helloKey := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", filepath.Join(imagesDir(t), "hello.aci")).stdout)
	images := map[string]*v1alpha.Image{}
	list, err := s.client.ListImages(callCtx(t), &v1alpha.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range list.Images {
		images[im.Name] = im
		if im.Manifest != nil {
			t.Errorf("ListImages without detail sent the manifest of %s", im.Name)
		}
	}
	busy, hello := images["nosecone.dev/busybox"], images["nosecone.dev/hello"]
	if len(images) != 2 || busy == nil || hello == nil {
		t.Fatalf("ListImages = %v", list.Images)
	}
	if !strings.HasPrefix(busy.Id, busyKey) || !strings.HasPrefix(hello.Id, helloKey) || len(hello.Id) != len("sha512-")+128 {
		t.Errorf("image IDs %s, %s; want the full IDs of %s, %s", busy.Id, hello.Id, busyKey, helloKey)
	}
	if busy.BaseFormat.GetType() != v1alpha.ImageType_IMAGE_TYPE_APPC || busy.Size <= 0 || busy.ImportTimestamp <= 0 {
		t.Errorf("busybox image = %v", busy)
	}
	events.waitFor(t, "IMAGE_IMPORTED "+hello.Id+" nosecone.dev/hello")

	names := func(filters ...*v1alpha.ImageFilter) string {
		t.Helper()
		r, err := s.client.ListImages(callCtx(t), &v1alpha.ListImagesRequest{Filters: filters, Detail: true})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, im := range r.Images {
			if len(im.Manifest) == 0 {
				t.Errorf("ListImages with detail sent no manifest of %s", im.Name)
			}
			out = append(out, im.Name)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	label := func(k, v string) *v1alpha.KeyValue { return &v1alpha.KeyValue{Key: k, Value: v} }
	for _, tt := range []struct {
		name    string
		filters []*v1alpha.ImageFilter
		want    string
	}{
		{name: "all", want: "nosecone.dev/busybox,nosecone.dev/hello"},
		{name: "by key", filters: []*v1alpha.ImageFilter{{Ids: []string{helloKey}}}, want: "nosecone.dev/hello"},
		{name: "base name", filters: []*v1alpha.ImageFilter{{BaseNames: []string{"busybox"}}}, want: "nosecone.dev/busybox"},
		{name: "prefix", filters: []*v1alpha.ImageFilter{{Prefixes: []string{"nosecone.dev/"}}}, want: "nosecone.dev/busybox,nosecone.dev/hello"},
		{name: "keyword", filters: []*v1alpha.ImageFilter{{Keywords: []string{"ell"}}}, want: "nosecone.dev/hello"},
		{name: "labels", filters: []*v1alpha.ImageFilter{{Labels: []*v1alpha.KeyValue{label("os", "linux"), label("arch", "amd64")}}}, want: "nosecone.dev/busybox,nosecone.dev/hello"},
		{name: "label absent", filters: []*v1alpha.ImageFilter{{Labels: []*v1alpha.KeyValue{label("os", "freebsd")}}}, want: ""},
		{name: "imported after busybox", filters: []*v1alpha.ImageFilter{{ImportedAfter: busy.ImportTimestamp - 1, FullNames: []string{"nosecone.dev/hello"}}}, want: "nosecone.dev/hello"},
		{name: "imported before the epoch's second", filters: []*v1alpha.ImageFilter{{ImportedBefore: 1}}, want: ""},
		{name: "or'ed", filters: []*v1alpha.ImageFilter{{BaseNames: []string{"hello"}}, {Keywords: []string{"busy"}}}, want: "nosecone.dev/busybox,nosecone.dev/hello"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(tt.filters...); got != tt.want {
				t.Errorf("ListImages = %q, want %q", got, tt.want)
			}
		})
	}

	in, err := s.client.InspectImage(callCtx(t), &v1alpha.InspectImageRequest{Id: helloKey[:20]})
	if err != nil {
		t.Fatal(err)
	}
	if in.Image.Id != hello.Id || !strings.Contains(string(in.Image.Manifest), `"nosecone.dev/hello"`) {
		t.Errorf("InspectImage = %v", in.Image)
	}
	if _, err := s.client.InspectImage(callCtx(t), &v1alpha.InspectImageRequest{Id: "sha512-0000"}); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("InspectImage of a missing image: %v, want NotFound", err)
	}

	e.ok("image", "rm", helloKey)
	got := events.waitFor(t, "IMAGE_IMPORTED "+hello.Id+" nosecone.dev/hello", "IMAGE_REMOVED "+hello.Id+" nosecone.dev/hello")
	for _, g := range got {
		if strings.Contains(g, busy.Id) {
			t.Errorf("an event of the image that stayed: %s", g)
		}
	}
	// A late subscriber gets the past with since_time.
	late := s.listen(t, &v1alpha.EventFilter{SinceTime: time.Now().Add(-time.Hour).Unix(), Types: []v1alpha.EventType{v1alpha.EventType_EVENT_TYPE_IMAGE_REMOVED}})
	if got := late.waitFor(t, "IMAGE_REMOVED "+hello.Id+" nosecone.dev/hello"); len(got) != 1 {
		t.Errorf("replayed events %q, want the removal only", got)
	}

	s.stop(t)
}

// TestAPIAsNscnGroupMember runs the service as an unprivileged user in
// the data directory's group, as a member of the nscn group runs it
// (Documentation/security.md): it answers ListPods and ListImages. The
// group is a numeric one the test gives the data directory: no user or
// group is added to the host. A pod runs and exits first, so that its
// directory is made as nscn makes it.
func TestAPIAsNscnGroupMember(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is missing")
	}
	e := newEnv(t)
	const gid = 47811 // in no host group: the test's stand-in for nscn
	e.ok("--insecure-options=image", "run", busybox(t), "--exec=/bin/true")
	uuid := strings.TrimSpace(firstLine(e.ok("list", "--no-legend", "--full").stdout))
	giveToGroup(t, e.dir, gid)
	// The test's temporary directories above the data directory are
	// root's 0700: the user may pass through them, as through /var/lib.
	for d := filepath.Dir(e.dir); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil { //nolint:gosec // G302: traversal only
			t.Fatal(err)
		}
	}
	s := startAPI(t, e, "", "setpriv", "--reuid=65534", "--regid=65534", "--groups="+strconv.Itoa(gid), "--inh-caps=-all", "--")
	pods, err := s.client.ListPods(callCtx(t), &v1alpha.ListPodsRequest{})
	if err != nil {
		t.Fatalf("ListPods as a group member: %v\n%s", err, s.stderr.String())
	}
	if len(pods.Pods) != 1 || pods.Pods[0].Id != uuid || pods.Pods[0].State != v1alpha.PodState_POD_STATE_EXITED {
		t.Errorf("ListPods as a group member = %v, want pod %s exited", pods.Pods, uuid)
	}
	ims, err := s.client.ListImages(callCtx(t), &v1alpha.ListImagesRequest{})
	if err != nil || len(ims.Images) == 0 {
		t.Errorf("ListImages as a group member = %v, %v", ims, err)
	}
	// It runs as that user: its /proc status says so.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nUid:\t65534\t65534\t65534\t65534\n") || !strings.Contains(string(b), "\nGroups:\t"+strconv.Itoa(gid)+" \n") {
		t.Errorf("the service's credentials:\n%s", b)
	}
	s.stop(t)
	// What it may not read stays unread: it never needed root.
	if strings.Contains(s.stderr.String(), "permission denied") {
		t.Errorf("the service met a permission error:\n%s", s.stderr.String())
	}

	// A data directory where nothing was fetched or run yet, as
	// tmpfiles.d makes it: the service answers with nothing, and creates
	// nothing.
	fresh := newEnv(t)
	if err := os.Mkdir(fresh.dir, 0o750); err != nil {
		t.Fatal(err)
	}
	giveToGroup(t, fresh.dir, gid)
	for d := filepath.Dir(fresh.dir); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil { //nolint:gosec // G302: traversal only
			t.Fatal(err)
		}
	}
	s = startAPI(t, fresh, "", "setpriv", "--reuid=65534", "--regid=65534", "--groups="+strconv.Itoa(gid), "--inh-caps=-all", "--")
	pods, err = s.client.ListPods(callCtx(t), &v1alpha.ListPodsRequest{})
	if err != nil || len(pods.Pods) != 0 {
		t.Errorf("ListPods of a fresh data directory = %v, %v", pods, err)
	}
	ims, err = s.client.ListImages(callCtx(t), &v1alpha.ListImagesRequest{})
	if err != nil || len(ims.Images) != 0 {
		t.Errorf("ListImages of a fresh data directory = %v, %v", ims, err)
	}
	s.stop(t)
	if left, _ := os.ReadDir(fresh.dir); len(left) != 0 {
		t.Errorf("the service created %v in the data directory", left)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(l)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// drainLogs reads a GetLogs stream to its end.
func drainLogs(t *testing.T, stream grpc.ServerStreamingClient[v1alpha.GetLogsResponse]) []string {
	t.Helper()
	var lines []string
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return lines
		}
		if err != nil {
			t.Fatalf("GetLogs: %v (after %q)", err, lines)
		}
		lines = append(lines, r.Lines...)
	}
}

// drainLogsErr reads a GetLogs stream to its end or its error.
func drainLogsErr(t *testing.T, s *apiService, req *v1alpha.GetLogsRequest) ([]string, error) {
	t.Helper()
	stream, err := s.client.GetLogs(callCtx(t), req)
	if err != nil {
		return nil, err
	}
	var lines []string
	for {
		r, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return lines, nil
			}
			return lines, err
		}
		lines = append(lines, r.Lines...)
	}
}

// giveToGroup gives the data directory dir to group gid as nscn does on
// a host with the nscn group (Documentation/security.md, "Least privilege
// on disk"): the directory root:GROUP 0750, what nscn made below it in
// the group, except what stays root's: a pod's stage1/, overlay/, logs/
// and journal/, and the store's rendered trees and imports in progress.
func giveToGroup(t *testing.T, dir string, gid int) {
	t.Helper()
	stays := map[string]bool{"stage1": true, "overlay": true, "logs": true, "journal": true}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		parts := strings.Split(rel, string(filepath.Separator))
		inPod := len(parts) == 4 && parts[0] == "pods"
		if d.IsDir() && ((inPod && stays[parts[3]]) || rel == "tmp" || rel == filepath.Join("cas", "tree") || rel == filepath.Join("cas", "tmp")) {
			return fs.SkipDir
		}
		return os.Lchown(p, -1, gid) //nolint:gosec // G122: the test's own data directory, no pod running; Lchown follows no link
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750); err != nil { //nolint:gosec // G302: the data directory's mode with the nscn group
		t.Fatal(err)
	}
}

// heldApp is an app of a held pod: it runs say (shell commands), then
// waits for the test's go-ahead (release), prints bye-NAME and exits with
// code.
type heldApp struct {
	name string
	say  string // shell commands run first
	code int
}

// heldPod is a pod run in the background whose apps wait until the test
// releases them, through a host volume mounted at /ctl in each app.
type heldPod struct {
	uuid      string
	ctl       string
	cmd       *exec.Cmd
	out, errb *testutil.SyncBuffer
	done      chan struct{}
	err       error
}

// startHeldPod starts "nscn" with runArgs (global flags, "run" and its
// flags) and apps, and returns once the pod's UUID is saved. The pod is
// released and waited for when the test ends.
func startHeldPod(t *testing.T, e *env, runArgs []string, apps ...heldApp) *heldPod {
	t.Helper()
	p := &heldPod{ctl: t.TempDir(), out: &testutil.SyncBuffer{}, errb: &testutil.SyncBuffer{}, done: make(chan struct{})}
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	args := append(slices.Clone(runArgs), "--uuid-file-save="+uuidFile, "--volume=ctl,kind=host,source="+p.ctl)
	for i, a := range apps {
		if i > 0 {
			args = append(args, "---")
		}
		script := a.say + "; while [ ! -e /ctl/go ] && [ ! -e /ctl/go-" + a.name + " ]; do sleep 0.1; done; echo bye-" + a.name + "; exit " + strconv.Itoa(a.code)
		args = append(args, busybox(t), "--name="+a.name, "--mount=volume=ctl,target=/ctl", "--exec=/bin/sh", "--", "-c", script)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	p.cmd = e.cmd(ctx, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.release(t)
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			e.run("stop", "--force", p.uuid)
			<-p.done
		}
	})
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("pod ended before it started: %v\n%s\n%s", p.err, p.out.String(), p.errb.String())
		default:
		}
		if b, err := os.ReadFile(uuidFile); err == nil && len(strings.TrimSpace(string(b))) > 0 { //nolint:gosec // G304: a file the test made
			p.uuid = strings.TrimSpace(string(b))
			return p
		}
	}
	t.Fatalf("pod did not start: %s %s", p.out.String(), p.errb.String())
	return nil
}

// release lets the pod's apps end; with names, only those apps.
func (p *heldPod) release(t *testing.T, names ...string) {
	t.Helper()
	files := []string{"go"}
	if len(names) > 0 {
		files = nil
		for _, n := range names {
			files = append(files, "go-"+n)
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(p.ctl, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// wait waits for nscn run to end.
func (p *heldPod) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("pod did not end\n%s", p.errb.String())
	}
}

// waitPodState polls InspectPod until the pod is in state, and returns
// it; a running pod also until its stage1 recorded its pid (stage0 holds
// the lock of a pod it is about to start).
func (s *apiService) waitPodState(t *testing.T, uuid string, state v1alpha.PodState) *v1alpha.Pod {
	t.Helper()
	var last *v1alpha.Pod
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r, err := s.client.InspectPod(callCtx(t), &v1alpha.InspectPodRequest{Id: uuid})
		if err != nil {
			t.Fatal(err)
		}
		if last = r.Pod; last.State == state && (state != v1alpha.PodState_POD_STATE_RUNNING || last.Pid > 0) {
			return last
		}
	}
	t.Fatalf("pod %s is %v, want %v", uuid, last.GetState(), state)
	return nil
}

// podIDs lists the IDs of the pods ListPods gives for filters.
func (s *apiService) podIDs(t *testing.T, filters ...*v1alpha.PodFilter) []string {
	t.Helper()
	r, err := s.client.ListPods(callCtx(t), &v1alpha.ListPodsRequest{Filters: filters})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, p := range r.Pods {
		ids = append(ids, p.Id)
	}
	return ids
}

// appStates maps the apps of p to "STATE CODE".
func appStates(p *v1alpha.Pod) map[string]string {
	out := map[string]string{}
	for _, a := range p.Apps {
		s := strings.TrimPrefix(a.State.String(), "APP_STATE_")
		if a.State == v1alpha.AppState_APP_STATE_EXITED {
			s += " " + strconv.Itoa(int(a.ExitCode))
		}
		out[a.Name] = s
	}
	return out
}

// TestAPISocketActivatedNotifies runs the service as systemd would with
// nscn-api.socket: on a socket passed by systemd-socket-activate
// (LISTEN_FDS), reporting READY=1 on NOTIFY_SOCKET, and stopping on
// SIGTERM with exit status 0.
func TestAPISocketActivatedNotifies(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate (package systemd) is missing")
	}
	e := newEnv(t)
	dir := t.TempDir()
	sock, notify := filepath.Join(dir, "api.sock"), filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nc.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// No --listen: the passed socket replaces the flags.
	cmd := e.cmd(ctx, "api-service", "--poll-interval=1s")
	cmd.Args = append([]string{activate, "-l", sock, "-E", "NOTIFY_SOCKET=" + notify}, cmd.Args...)
	cmd.Path = activate
	cmd.Err = nil
	stderr := &testutil.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd-socket-activate made no socket\n%s", stderr.String())
		}
	}
	// systemd-socket-activate starts the service at the first connection.
	if _, err := v1alpha.NewPublicAPIClient(conn).GetInfo(callCtx(t), &v1alpha.GetInfoRequest{}); err != nil {
		t.Fatalf("GetInfo on the activated socket: %v\n%s", err, stderr.String())
	}
	_ = nc.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 4096)
	n, err := nc.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("notify socket: %q, %v\n%s", buf[:n], err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "socket-activated") || strings.Contains(stderr.String(), "15441") {
		t.Errorf("the service did not serve on the passed socket alone:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		exited = true
		if waitErr != nil {
			t.Errorf("after SIGTERM: %v\n%s", waitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", stderr.String())
	}
}
