//go:build functional && nspawn

package tests

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startSandbox starts nscn app sandbox with stage1-nspawn on the default
// CNI network and returns once the pod runs.
func startSandbox(t *testing.T, e *env, flags ...string) *bgPod {
	t.Helper()
	args := append([]string{"--insecure-options=image", "app", "sandbox", "--stage1-path=" + nspawnACI(t)}, flags...)
	p := startPod(t, e, 60*time.Second, nil, args...)
	if got := strings.TrimSpace(p.out.String()); got != p.uuid {
		// The UUID is on stdout as soon as the pod is prepared.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && strings.TrimSpace(p.out.String()) != p.uuid; {
			time.Sleep(50 * time.Millisecond)
		}
		if got := strings.TrimSpace(p.out.String()); got != p.uuid {
			t.Fatalf("app sandbox printed %q, want the UUID %s", got, p.uuid)
		}
	}
	return p
}

// TestAppMutablePodLifecycle drives a mutable pod as a user would: a
// sandbox with no app, two apps added and started, one entered, stopped
// and removed, another added with a mount of a pod volume, then the pod
// stopped and garbage collected, leaving no mount, network namespace or
// cgroup behind.
func TestAppMutablePodLifecycle(t *testing.T) {
	e := newNetEnv(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "greeting"), []byte("hello from the volume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startSandbox(t, e, "--net=default", "--volume=data,kind=host,source="+vol)
	uuid := p.uuid
	podDir := filepath.Join(e.dir, "pods", "run", uuid)

	// A pod with no app runs, and the commands that read pods take it.
	time.Sleep(time.Second)
	select {
	case <-p.done:
		t.Fatalf("the sandbox ended with no app: %v\n%s", p.err, p.errb.String())
	default:
	}
	if r := e.ok("status", uuid); !strings.Contains(r.stdout, "state=running") {
		t.Fatalf("status of the sandbox: %s", r.stdout)
	}
	// Its journald is started once it is ready, before any app (so the
	// first app's start does not pay for it).
	if !podRunsProcess(t, podDir, "systemd-journal", 5*time.Second) {
		t.Fatal("the sandbox's journald did not start before its first app")
	}
	if r := e.ok("app", "list", uuid); strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 {
		t.Fatalf("app list of an empty sandbox: %q", r.stdout)
	}
	e.ok("cat-manifest", uuid)
	netnsBytes, err := os.ReadFile(filepath.Join(podDir, "netns")) //nolint:gosec // G304: a file of the test's pod
	if err != nil {
		t.Fatalf("the sandbox on the default network recorded no netns: %v", err)
	}
	netns := strings.TrimSpace(string(netnsBytes))

	for _, a := range []struct{ name, script string }{
		{"web", "echo web up; exec sleep 600"},
		{"worker", "trap 'exit 3' TERM; echo worker up; while :; do sleep 1; done"},
	} {
		e.ok("--insecure-options=image", "app", "add", uuid, busybox(t), "--name="+a.name, "--exec=/bin/sh", "--", "-c", a.script)
		if st := e.appStatus(uuid, a.name); st.State != "created" || st.Created == "" || st.Started != "" {
			t.Fatalf("app %s after add: %+v", a.name, st)
		}
	}
	e.fails("two apps are named", "--insecure-options=image", "app", "add", uuid, busybox(t), "--name=web", "--exec=/bin/true")
	for _, a := range []string{"web", "worker"} {
		e.ok("app", "start", uuid, "--app="+a)
	}
	sts := e.appList(uuid)
	for _, a := range []string{"web", "worker"} {
		st := sts[a]
		if st.State != "running" || st.PID <= 0 || st.Started == "" || st.ExitCode != nil {
			t.Fatalf("app %s after start: %+v", a, st)
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(st.PID))); err != nil {
			t.Fatalf("app %s: pid %d is not running: %v", a, st.PID, err)
		}
	}
	e.fails("no app", "app", "start", uuid, "--app=nope")

	// exec runs in the app, confined as enter confines, and passes the
	// status on.
	r := e.run("app", "exec", uuid, "--app=web", "--", "/bin/sh", "-c", `echo $AC_APP_NAME; grep -c '^Seccomp:.*2' /proc/self/status; exit 5`)
	if r.code != 5 || strings.Join(strings.Fields(r.stdout), " ") != "web 1" {
		t.Fatalf("app exec: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}

	// Stop one app: its exit code is recorded; the pod and the other
	// app go on.
	e.ok("app", "stop", uuid, "--app=worker")
	st := e.appStatus(uuid, "worker")
	if st.State != "exited" || st.ExitCode == nil || *st.ExitCode != 3 || st.Finished == "" || st.PID != 0 {
		t.Fatalf("worker after stop: %+v", st)
	}
	if st := e.appStatus(uuid, "web"); st.State != "running" {
		t.Fatalf("web after worker's stop: %+v", st)
	}

	// Remove it: its mounts (in the pod and on the host), its rendered
	// rootfs, units and records are gone, and the manifest lists it no
	// more.
	e.ok("app", "rm", uuid, "--app=worker")
	for _, gone := range []string{
		"stage1/rootfs/opt/stage2/worker", "overlay/apps/worker", "appsinfo/worker",
		"stage1/rootfs/etc/systemd/system/app-worker.service", "stage1/rootfs/nscn/io/worker",
		"stage1/rootfs/rkt/status/worker", "stage1/rootfs/rkt/started/worker",
	} {
		if _, err := os.Lstat(filepath.Join(podDir, gone)); err == nil {
			t.Errorf("%s left after app rm", gone)
		}
	}
	for _, mi := range []string{"/proc/self/mountinfo", filepath.Join("/proc", strconv.Itoa(podPID(t, podDir)), "mountinfo")} {
		b, err := os.ReadFile(mi) //nolint:gosec // G304: a /proc file
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "/worker/") || strings.Contains(string(b), "/worker ") {
			t.Fatalf("mounts of the removed app left in %s:\n%s", mi, b)
		}
	}
	if r := e.ok("cat-manifest", uuid); strings.Contains(r.stdout, `"worker"`) {
		t.Fatalf("the manifest still lists the removed app: %s", r.stdout)
	}
	e.fails("no app", "app", "status", uuid, "--app=worker")

	// Another app, with a mount of the pod's volume.
	e.ok("--insecure-options=image", "app", "add", uuid, busybox(t), "--name=reader", "--mount", "volume=data,target=/data",
		"--exec=/bin/sh", "--", "-c", "cat /data/greeting; exec sleep 600")
	e.ok("app", "start", uuid, "--app=reader")
	if r := e.ok("app", "exec", uuid, "--app=reader", "--", "/bin/cat", "/data/greeting"); r.stdout != "hello from the volume\n" {
		t.Fatalf("the volume in the added app: %q", r.stdout)
	}
	if r := e.ok("logs", "--app=reader", uuid); !strings.Contains(r.stdout, "hello from the volume") {
		t.Fatalf("logs of the added app: %q", r.stdout)
	}
	e.ok("enter", "--app=web", uuid, "/bin/true")

	// Stop the pod: nscn app sandbox exits 0, the apps' states say so,
	// and gc leaves nothing.
	e.ok("stop", uuid)
	if err := p.wait(); err != nil {
		t.Fatalf("app sandbox after stop: %v\n%s", err, p.errb.String())
	}
	if st := e.appStatus(uuid, "web"); st.State != "exited" {
		t.Fatalf("web after the pod's stop: %+v", st)
	}
	e.fails("not running", "--insecure-options=image", "app", "add", uuid, busybox(t), "--name=late", "--exec=/bin/true")
	assertPodsGone(t, e)
	if _, err := os.Lstat(netns); err == nil { //nolint:gosec // G703: the netns path the test's pod recorded
		t.Fatalf("the pod's network namespace %s is left after gc", netns)
	}
}

// podPID is the pid of the pod's pid 1 (its systemd): the only child of
// systemd-nspawn, whose pid run records.
func podPID(t *testing.T, podDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(podDir, "ppid")) //nolint:gosec // G304: a file of the test's pod
	if err != nil {
		t.Fatal(err)
	}
	ppid := strings.TrimSpace(string(b))
	children, err := filepath.Glob(filepath.Join("/proc", ppid, "task", "*", "children"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		b, _ := os.ReadFile(c) //nolint:gosec // G304: a /proc file
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	t.Fatalf("systemd-nspawn %s has no child", ppid)
	return 0
}

// TestAppRefusals: the app commands say clearly why they cannot act, and
// exit non-zero.
func TestAppRefusals(t *testing.T) {
	e := newNetEnv(t)
	// The fly stage1 has no app entrypoints: a sandbox is refused before
	// it starts, and so is adding an app to a pod it runs.
	r := e.fails("cannot change the apps of a running pod", "--insecure-options=image", "app", "sandbox", "--stage1-from-dir=stage1-fly.aci")
	if r.code != 254 {
		t.Errorf("app sandbox on fly: exit %d, want 254", r.code)
	}
	fly := startPod(t, e, 30*time.Second, []string{"up"}, "--insecure-options=image", "run", "--stage1-from-dir=stage1-fly.aci",
		busybox(t), "--exec=/bin/sh", "--", "-c", "echo up; exec sleep 600")
	e.fails("cannot change the apps of a running pod", "--insecure-options=image", "app", "add", fly.uuid, busybox(t), "--name=x", "--exec=/bin/true")
	e.fails("cannot change the apps of a running pod", "app", "start", fly.uuid, "--app=busybox")
	fly.stop(t, e)

	p := startSandbox(t, e, "--net=host")
	e.fails("no app", "app", "start", p.uuid, "--app=nope")
	e.fails("no app", "app", "stop", p.uuid, "--app=nope")
	e.fails("no app", "app", "rm", p.uuid, "--app=nope")
	e.fails("--app=NAME is required", "app", "start", p.uuid)
	e.fails("no image", "app", "sandbox", busybox(t))
	e.fails("not a flag of a sandbox", "app", "sandbox", "--private-users")
	e.fails("a flag of the pod", "--insecure-options=image", "app", "add", p.uuid, "--hostname=x", busybox(t))
	e.fails("no command", "app", "exec", p.uuid, "--app=x")
	e.ok("--insecure-options=image", "app", "add", p.uuid, busybox(t), "--name=one", "--exec=/bin/true")
	e.fails("two apps are named", "--insecure-options=image", "app", "add", p.uuid, busybox(t), "--name=one", "--exec=/bin/true")
	e.fails("--mount names volume", "--insecure-options=image", "app", "add", p.uuid, busybox(t), "--name=two", "--mount=volume=nope,target=/x", "--exec=/bin/true")
	// An app that exits at once: start succeeds, the status is its own.
	e.ok("app", "start", p.uuid, "--app=one")
	if st := waitAppExited(t, e, p.uuid, "one", 10*time.Second); st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("app one after it exited: %+v", st)
	}
	// The pod outlives its last app.
	time.Sleep(500 * time.Millisecond)
	if r := e.ok("status", p.uuid); !strings.Contains(r.stdout, "state=running") {
		t.Fatalf("the sandbox ended with its last app: %s", r.stdout)
	}
	e.ok("stop", p.uuid)
	if err := p.wait(); err != nil {
		t.Fatalf("app sandbox after stop: %v\n%s", err, p.errb.String())
	}
	e.fails("not running", "app", "start", p.uuid, "--app=one")
	assertPodsGone(t, e)
}

// TestAppConfinedAsRunApp: an app added to a mutable pod is confined as
// the same app in a pod nscn run starts: the same capability sets,
// seccomp mode, no_new_privs, user, root and PID namespace view.
func TestAppConfinedAsRunApp(t *testing.T) {
	e := newNetEnv(t)
	const probe = `grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; id; ls /; cat /proc/1/comm`
	r := e.nspawnSh(probe, "--name=probe", "--user=nobody", "--group=nogroup")
	if r.code != 0 {
		t.Fatalf("run: exit %d: %s", r.code, r.stderr)
	}
	want := appStderr(r.stdout)
	if !strings.Contains(want, "Seccomp:\t2") || !strings.Contains(want, "uid=65534") {
		t.Fatalf("the run-time probe printed %q", want)
	}
	p := startSandbox(t, e, "--net=host")
	e.ok("--insecure-options=image", "app", "add", p.uuid, busybox(t), "--name=probe", "--user=nobody", "--group=nogroup",
		"--exec=/bin/sh", "--", "-c", probe)
	e.ok("app", "start", p.uuid, "--app=probe")
	waitAppExited(t, e, p.uuid, "probe", 20*time.Second)
	got := e.ok("logs", "--app=probe", p.uuid).stdout
	if strings.TrimSpace(got) != strings.TrimSpace(want) {
		t.Fatalf("the added app is confined otherwise than the run-time app:\nadded:\n%s\nrun:\n%s", got, want)
	}
	e.ok("stop", p.uuid)
	if err := p.wait(); err != nil {
		t.Fatalf("app sandbox after stop: %v", err)
	}
	assertPodsGone(t, e)
}

// TestAppRestartKeepsTheMountTable: an app stopped and started again
// many times runs each time, and the pod's mount table does not grow:
// each start prepared a new rootfs tree over copies of the earlier ones,
// until the mount namespace was full (ENOSPC) after a few dozen.
func TestAppRestartKeepsTheMountTable(t *testing.T) {
	e := newNetEnv(t)
	p := startSandbox(t, e, "--net=host")
	podDir := filepath.Join(e.dir, "pods", "run", p.uuid)
	e.ok("--insecure-options=image", "app", "add", p.uuid, busybox(t), "--name=again", "--exec=/bin/sh", "--", "-c", "echo started; sleep 300")
	mounts := func() int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(podPID(t, podDir)), "mountinfo"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "\n")
	}
	var after []int
	for i := range 6 {
		e.ok("app", "start", p.uuid, "--app=again")
		if st := e.appStatus(p.uuid, "again"); st.State != "running" {
			t.Fatalf("start %d: app state %+v", i+1, st)
		}
		after = append(after, mounts())
		e.ok("app", "stop", p.uuid, "--app=again")
	}
	// The first start may differ (the pod's own first mounts); every
	// later one leaves the table as the second did.
	for i, n := range after[2:] {
		if n != after[1] {
			t.Fatalf("mounts in the pod after each start: %v (start %d differs from start 2)", after, i+3)
		}
	}
	e.ok("stop", p.uuid)
	if err := p.wait(); err != nil {
		t.Fatalf("app sandbox after stop: %v\n%s", err, p.errb.String())
	}
	assertPodsGone(t, e)
}

// TestAppSandboxStopForce: stop --force kills a mutable pod; app sandbox
// exits 137, and the running app's status records the kill.
func TestAppSandboxStopForce(t *testing.T) {
	e := newNetEnv(t)
	p := startSandbox(t, e, "--net=host")
	e.ok("--insecure-options=image", "app", "add", p.uuid, busybox(t), "--name=sleeper", "--exec=/bin/sleep", "--", "600")
	e.ok("app", "start", p.uuid, "--app=sleeper")
	e.ok("stop", "--force", p.uuid)
	err := p.wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 137 {
		t.Fatalf("app sandbox after stop --force: %v, want exit 137", err)
	}
	if st := e.appStatus(p.uuid, "sleeper"); st.State != "exited" || st.ExitCode == nil || *st.ExitCode != 137 {
		t.Fatalf("the killed app: %+v", st)
	}
	assertPodsGone(t, e)
}

// TestAppSandboxPublish: a sandbox, which has no app when it starts,
// forwards a host port to a port of the pod (--publish), whichever app
// listens there later; a second pod cannot take the port while it runs,
// and gc leaves no forwarding rule, lease or namespace.
func TestAppSandboxPublish(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	p := startSandbox(t, e, "--net=default", "--publish=127.0.0.1:18083:80")
	e.ok("--insecure-options=image", "app", "add", p.uuid, busybox(t), "--name=web", "--exec=/bin/sh", "--", "-c", httpdScript)
	e.ok("app", "start", p.uuid, "--app=web")
	if got := httpGet(t, "http://127.0.0.1:18083/"); got != "hello from web\n" {
		t.Errorf("GET through the published port: %q", got)
	}
	e.fails("host port tcp/18083 is already forwarded", "--insecure-options=image", "run", "--net=default",
		"--publish=18083:80", "--stage1-path="+nspawnACI(t), busybox(t), "--exec=/bin/true")
	e.fails("--publish", "--insecure-options=image", "app", "sandbox", "--publish=80")
	e.ok("stop", p.uuid)
	if err := p.wait(); err != nil {
		t.Fatalf("app sandbox after stop: %v\n%s", err, p.errb.String())
	}
	netGC(t, e)
	requireNetRestored(t, e, before)
}

// TestAppSandboxNetFailsLeavesNothing: a sandbox gets its network while
// it boots (its pod has no app yet); when a plugin fails, on the second
// of its networks, nscn app sandbox fails with the plugin's error, the
// pod was never ready, and neither the namespace nor the first network's
// lease and rules outlive the failure, before any gc.
func TestAppSandboxNetFailsLeavesNothing(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	writeNet(t, e, "30-tiny.conflist", `{"cniVersion": "1.0.0", "name": "tiny", "plugins": [
  {"type": "ptp", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.78.0/30", "rangeStart": "10.251.78.2", "rangeEnd": "10.251.78.2"}]]}}]}`)
	holder := startSandbox(t, e, "--net=tiny")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.fails("no IP addresses available", "--insecure-options=image", "app", "sandbox", "--stage1-path="+nspawnACI(t),
		"--net=default,tiny", "--uuid-file-save="+uuidFile)
	b, err := os.ReadFile(uuidFile) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	uuid := strings.TrimSpace(string(b))
	podDir := filepath.Join(e.dir, "pods", "run", uuid)
	if _, err := os.Lstat(filepath.Join(podDir, "ready")); err == nil { //nolint:gosec // G703: the test's own pod directory
		t.Error("the sandbox whose network failed was reported ready")
	}
	for _, f := range []string{"netns", "net-info"} {
		if _, err := os.Lstat(filepath.Join(podDir, f)); err == nil { //nolint:gosec // G703: the test's own pod directory
			t.Errorf("%s left in the failed sandbox's pod directory", f)
		}
	}
	if _, err := os.Lstat("/run/netns/nscn-" + uuid); err == nil { //nolint:gosec // G703: the pin of the test's own pod
		t.Error("the failed sandbox's namespace is still pinned")
	}
	leases, _ := filepath.Glob("/var/lib/cni/networks/default/*")
	for _, l := range leases {
		if b, err := os.ReadFile(l); err == nil && strings.HasPrefix(string(b), uuid) { //nolint:gosec // G304: host-local's lease files
			t.Errorf("the failed sandbox kept its lease %s on the default network", filepath.Base(l))
		}
	}
	e.ok("stop", holder.uuid)
	if err := holder.wait(); err != nil {
		t.Fatalf("app sandbox after stop: %v\n%s", err, holder.errb.String())
	}
	netGC(t, e)
	requireNetRestored(t, e, before)
}

// podRunsProcess waits up to wait until a process whose comm is comm
// descends from the pod's systemd-nspawn (its ppid file).
func podRunsProcess(t *testing.T, podDir, comm string, wait time.Duration) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(podDir, "ppid")) //nolint:gosec // G304: a file of the test's pod
	if err != nil {
		t.Fatalf("the pod's ppid: %v", err)
	}
	nspawn := strings.TrimSpace(string(b))
	parent := func(pid string) string {
		st, err := os.ReadFile(filepath.Join("/proc", pid, "stat")) //nolint:gosec // G304: a /proc file
		if err != nil {
			return ""
		}
		_, rest, ok := strings.Cut(string(st), ") ")
		if f := strings.Fields(rest); ok && len(f) > 1 {
			return f[1]
		}
		return ""
	}
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		comms, _ := filepath.Glob("/proc/[0-9]*/comm")
		for _, c := range comms {
			if b, err := os.ReadFile(c); err != nil || strings.TrimSpace(string(b)) != comm { //nolint:gosec // G304: a /proc file
				continue
			}
			for pid := filepath.Base(filepath.Dir(c)); pid != "" && pid != "0" && pid != "1"; pid = parent(pid) {
				if pid == nspawn {
					return true
				}
			}
		}
	}
	return false
}
