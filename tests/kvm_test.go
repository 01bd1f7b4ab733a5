//go:build functional && kvm

package tests

// The kvm flavor's end-to-end tests. Every boot costs seconds under TCG
// (this project's machines have no /dev/kvm), so each test packs what it
// checks into as few pods as it can: TestKvmPod checks exit statuses,
// environment, users, volumes, multi-app pods, isolators and logs in one
// pod.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"

	"github.com/nosecone/nscn/stage1-kvm/hypervisor"
)

// kvmACI is the stage1-kvm image under test, from make.
func kvmACI(t *testing.T) string { return mustEnv(t, "NSCN_STAGE1_KVM_ACI") }

// kvmRunArgs is the argv of nscn run with the stage1-kvm image, then args.
func kvmRunArgs(t *testing.T, args ...string) []string {
	return append([]string{"--insecure-options=image", "run", "--stage1-path=" + kvmACI(t)}, args...)
}

func TestKvmPod(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "in"), []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(host, 0o777); err != nil { //nolint:gosec // G302: the app's user writes there
		t.Fatal(err)
	}
	// a runs as the image's user, reads and writes a host volume, reads
	// its limits, and waits for b's file in a shared empty volume; b
	// writes it and fails with 5 once a is done.
	start := time.Now()
	r := e.run(kvmRunArgs(t, "--net=none",
		"--volume", "host,kind=host,source="+host, "--volume", "shared,kind=empty",
		busybox(t), "--name=a", "--user=user", "--group=user", "--memory=256Mi", "--cpu=1500m",
		"--mount", "volume=host,target=/host", "--mount", "volume=shared,target=/shared",
		"--exec=/bin/sh", "--", "-c",
		`echo "a: $(id -u) $(id -g) $AC_APP_NAME greeting=$GREETING $(cat /host/in) $(uname -r)"
		echo written-in-guest > /host/out
		for i in $(seq 100); do [ -e /shared/msg ] && break; sleep 0.1; done
		echo "a-got $(cat /shared/msg)"
		echo "limits $(cat /sys/fs/cgroup/memory.max) $(cat /sys/fs/cgroup/cpu.max) $(nproc) $(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2)"
		echo a-stderr >&2`, "---",
		busybox(t), "--name=b", "--mount", "volume=shared,target=/shared", "--exec=/bin/sh", "--", "-c",
		`echo from-b > /shared/msg; sleep 4; exit 5`)...)
	t.Logf("pod ran in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stderr))
	if r.code != 5 {
		t.Fatalf("exit %d, want 5 (b's); stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "stage1-kvm: accelerator=") {
		t.Errorf("run did not say which accelerator it used: %q", r.stderr)
	}
	lines := map[string][]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = f[1:]
		}
	}
	if got := strings.Join(lines["a:"], " "); !strings.HasPrefix(got, "1000 1000 a greeting=Hello from Nose Cone from-host ") || !strings.HasSuffix(got, "-cloud-amd64") {
		t.Errorf("app a printed %q, want its user, name, image env, the host file and the guest's kernel", got)
	}
	if got := strings.Join(lines["a-got"], " "); got != "from-b" {
		t.Errorf("a read %q from the shared volume, want from-b", got)
	}
	mem, cpus := hypervisor.Size([]hypervisor.AppLimits{{MemoryBytes: 256 << 20, CPUMilli: 1500}, {}}, runtime.NumCPU())
	lim := lines["limits"]
	if len(lim) != 5 || lim[0] != "268435456" || lim[1] != "150000" || lim[2] != "100000" || lim[3] != strconv.Itoa(cpus) {
		t.Errorf("limits seen in the guest %q, want memory.max 268435456, cpu.max 150000 100000, %d vCPUs", lim, cpus)
	} else if kb, _ := strconv.ParseInt(lim[4], 10, 64); kb > mem<<10 || kb < mem<<10*8/10 {
		t.Errorf("guest MemTotal %d kB, want a little below %d MiB", kb, mem)
	}
	if !strings.Contains(r.stderr, "a-stderr") || strings.Contains(r.stdout, "a-stderr") {
		t.Errorf("the app's stderr is not kept apart: stdout %q stderr %q", r.stdout, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(host, "out")); err != nil || string(b) != "written-in-guest\n" { //nolint:gosec // G304: a file the test made
		t.Errorf("host volume after the pod: %q, %v", b, err)
	}
	uuid := nspawnOnlyPod(t, e)
	codes := podAppStatuses(t, e, uuid)
	if codes["a"] != 0 || codes["b"] != 5 || len(codes) != 2 {
		t.Errorf("recorded app statuses %v, want a:0 b:5", codes)
	}
	logs := e.ok("logs", uuid)
	if !strings.Contains(logs.stdout+logs.stderr, "a-got from-b") {
		t.Errorf("nscn logs %q %q lacks a's output", logs.stdout, logs.stderr)
	}
	assertPodsGone(t, e)
}

// TestKvmNetAndStop runs a web server in a pod on the default network
// with a forwarded port, reaches it through the pod's address and the
// forwarded port on 127.0.0.1, stops the pod and checks that gc leaves
// nothing: no qemu, virtiofsd, tap, namespace, iptables rule or lease.
func TestKvmNetAndStop(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	web := startPod(t, e, 100*time.Second, []string{"ready"}, kvmRunArgs(t, "--net=default", "--port=http:127.0.0.1:18089",
		busybox(t), "--exec=/bin/sh", "--", "-c", httpdScript)...)
	ip := web.ip(t, e, "default")
	if got := httpGet(t, "http://"+ip+"/"); got != "hello from busybox\n" {
		t.Errorf("GET through the pod IP: %q", got)
	}
	if got := httpGet(t, "http://127.0.0.1:18089/"); got != "hello from busybox\n" {
		t.Errorf("GET through the forwarded port: %q", got)
	}
	if st := e.ok("status", web.uuid); !strings.Contains(st.stdout, "running") {
		t.Errorf("status of the running pod: %q", st.stdout)
	}
	e.ok("stop", web.uuid)
	err := web.wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	if code != 143 {
		t.Fatalf("run exited %d after stop, want 143; stderr %s", code, web.errb.String())
	}
	netGC(t, e)
	assertPodsGone(t, e)
	requireNetRestored(t, e, before)
}

// TestKvmStopAtFirstOutput: a stop that comes as soon as the app has
// written its first line, before the guest's agent (which starts after
// the apps) can take a request, still stops the pod cleanly: the halt
// request waits for the agent instead of being lost, which left the pod
// running after stop had said it was stopping it.
func TestKvmStopAtFirstOutput(t *testing.T) {
	e := newEnv(t)
	p := startPod(t, e, 100*time.Second, []string{"first-line"}, kvmRunArgs(t, "--net=none",
		busybox(t), "--exec=/bin/sh", "--", "-c", "echo first-line; exec sleep 300")...)
	e.ok("stop", p.uuid)
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("run still runs 90 s after stop; stderr %s", p.errb.String())
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("run after stop: %v, want exit 143; stderr %s", p.err, p.errb.String())
	}
	e.ok("gc", "--grace-period=0s")
	assertPodsGone(t, e)
}

// TestKvmEnterAndStopForce enters a running pod's app through the
// guest's agent (the command runs in the app's rootfs, as the app's user,
// with the app's confinement, among the app's processes; stdin, stdout,
// stderr and the exit status come back), then kills the guest with stop
// --force: run exits 137, the app's status says so, enter is refused and
// gc leaves nothing. One pod for both: each boot costs seconds under TCG.
func TestKvmEnterAndStopForce(t *testing.T) {
	e := newEnv(t)
	p := startPod(t, e, 100*time.Second, []string{"ready"}, kvmRunArgs(t, "--net=none",
		busybox(t), "--name=sleeper", "--user=user", "--group=user",
		"--exec=/bin/sh", "--", "-c", "echo ready; exec sleep 300")...)
	// The guest's root has the agent; the app's rootfs has none.
	r := e.ok("enter", p.uuid, "/bin/sh", "-c", `echo $AC_APP_NAME $(id -u) $(id -g) $(pwd) $(ps -o comm | grep -c '^sleep$') $(test -e /nscn/agent && echo guest-root || echo app-root)
		grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t' ' ' | sort > /tmp/enter
		grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/$(pidof sleep)/status | tr -s '\t' ' ' | sort > /tmp/app
		cmp -s /tmp/enter /tmp/app && echo same-confinement || { cat /tmp/enter /tmp/app; }
		echo to-stderr >&2`)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 2 || lines[0] != "sleeper 1000 1000 / 1 app-root" || lines[1] != "same-confinement" {
		t.Errorf("enter printed %q, want the app's name, user, group, directory, its one sleep, its rootfs and its confinement", r.stdout)
	}
	if !strings.Contains(r.stderr, "to-stderr") || strings.Contains(r.stdout, "to-stderr") {
		t.Errorf("enter's stderr is not kept apart: stdout %q stderr %q", r.stdout, r.stderr)
	}
	in := strings.Repeat("piped through the guest\n", 1000)
	if r := e.runIn([]byte(in), "enter", p.uuid, "/bin/cat"); r.code != 0 || r.stdout != in {
		t.Errorf("enter /bin/cat: exit %d, %d bytes back of %d; stderr %q", r.code, len(r.stdout), len(in), r.stderr)
	}
	if r := e.run("enter", p.uuid, "/bin/sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("enter exit %d, want 7: %s", r.code, r.stderr)
	}
	e.fails("no-such-command", "enter", p.uuid, "/no-such-command")
	kvmEnterSignalAndQueue(t, e, p.uuid)
	e.ok("stop", "--force", p.uuid)
	err := p.wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	if code != 137 {
		t.Fatalf("run exited %d after stop --force, want 137; stderr %s", code, p.errb.String())
	}
	if codes := podAppStatuses(t, e, p.uuid); len(codes) != 1 || codes["sleeper"] != 137 {
		t.Errorf("app statuses after stop --force: %v, want sleeper's exit code 137", codes)
	}
	e.fails("not running", "enter", p.uuid, "/bin/true")
	assertPodsGone(t, e)
}

// TestKvmInteractivePipe pipes run's stdin to the app with --interactive
// (no terminal: a virtio-serial port that qemu reads from run's stdin)
// and reads it back: the app sees every byte, then end of file; its
// output is recorded as without --interactive.
func TestKvmInteractivePipe(t *testing.T) {
	e := newEnv(t)
	in := "hi\nthere\n" + strings.Repeat("0123456789abcdef", 8192) + "\nlast line\n"
	r := e.runIn([]byte(in), kvmRunArgs(t, "--net=none", "--interactive",
		busybox(t), "--exec=/bin/sh", "--", "-c", "cat; echo done >&2; exit 3")...)
	if r.code != 3 || r.stdout != in || !strings.Contains(r.stderr, "done") {
		t.Fatalf("exit %d, %d bytes of stdout back of %d, stderr %q; want 3, the input, done", r.code, len(r.stdout), len(in), r.stderr)
	}
	if strings.Contains(r.stderr, "QEMU waiting for connection") {
		t.Errorf("qemu's notice reached run's stderr: %q", r.stderr)
	}
	if l := e.ok("logs", nspawnOnlyPod(t, e)); !strings.HasPrefix(l.stdout, "hi\nthere\n") {
		t.Errorf("logs printed %.40q…, want the app's output", l.stdout)
	}
	assertPodsGone(t, e)
}

// TestKvmACEValidator runs the ACE validator (aceValidator) on the
// default CNI network, under KVM or TCG. The apps ask the guest's agent
// for their metadata (guest.MetadataProxy), which answers the pod's fixed
// data from memory and forwards the identity endpoints to the host's
// service: the validator gives each request 100 ms, less than an
// emulated guest's first request over the pod's network took. Under TCG
// on a loaded host a run can still miss the validator's timing, on the
// main app's first request or the sidekick's 5 s window
// (stage1-kvm/README.md, "Metadata service"): there, aceValidator runs
// it up to three times.
func TestKvmACEValidator(t *testing.T) {
	aceValidator(t, kvmACI(t), "default")
}

// TestKvmStatusesAndConfinement runs in one pod what the nspawn flavor's
// TestNspawnExitStatusPropagates, TestNspawnFirstFailingAppWins,
// TestNspawnTwoAppsShareThePod and TestNspawnIsolatorsFromInside check
// in several: app a reads its confinement (the default bounding set less
// --caps-remove, a seccomp filter returning ENOTSUP for chmod, the pod's
// hostname) and sees no other app's process; b dies of SIGKILL first
// (137, the pod's status); c, still sleeping, is stopped (143).
func TestKvmStatusesAndConfinement(t *testing.T) {
	e := newEnv(t)
	r := e.run(kvmRunArgs(t, "--net=none",
		busybox(t), "--name=a", "--caps-remove=CAP_CHOWN", "--seccomp=mode=remove,errno=ENOTSUP,chmod,fchmodat,fchmod",
		"--exec=/bin/sh", "--", "-c",
		`grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
		chmod 600 /tmp 2>&1; echo chmod=$?
		chown 1 /tmp 2>&1; echo chown=$?
		echo host=$(hostname | cut -c1-5) others=$(ps | grep -c '[s]leep 60')`, "---",
		busybox(t), "--name=b", "--exec=/bin/sh", "--", "-c", "sleep 2; kill -9 $$", "---",
		busybox(t), "--name=c", "--exec=/bin/sh", "--", "-c", "sleep 60; exit 6")...)
	if r.code != 137 {
		t.Fatalf("exit %d, want 137 (b's); stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	st := procStatus(r.stdout)
	noChown := strconv.FormatUint(mustHex(t, defaultCaps)&^(1<<capChown), 16)
	if want := fmt.Sprintf("%016s", noChown); st["CapBnd"] != want || st["CapEff"] != want || st["NoNewPrivs"] != "0" || st["Seccomp"] != "2" {
		t.Errorf("a's status %v, want the default bounding set less CAP_CHOWN (%s), no_new_privs 0, a seccomp filter", st, want)
	}
	for _, want := range []string{"not supported", "chmod=1", "Operation not permitted", "chown=1", "host=nscn- others=0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("a printed %q, lacking %q", r.stdout, want)
		}
	}
	codes := podAppStatuses(t, e, nspawnOnlyPod(t, e))
	if codes["a"] != 0 || codes["b"] != 137 || codes["c"] != 143 || len(codes) != 3 {
		t.Errorf("recorded app statuses %v, want a:0 b:137 c:143", codes)
	}
	assertPodsGone(t, e)
}

// mustHex parses a capability mask.
func mustHex(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// podAppStatuses returns each app's exit code as nscn status reports it.
func podAppStatuses(t *testing.T, e *env, uuid string) map[string]int {
	t.Helper()
	st := e.ok("status", "--format=json", uuid)
	var got struct {
		Apps []struct {
			Name     string `json:"name"`
			ExitCode int    `json:"exit_code"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(st.stdout), &got); err != nil {
		t.Fatalf("parse status %s: %v", st.stdout, err)
	}
	codes := map[string]int{}
	for _, a := range got.Apps {
		codes[a.Name] = a.ExitCode
	}
	return codes
}

// kvmEnterSignalAndQueue checks, on a running kvm pod, that SIGINT to an
// enter reaches the entered command (as a terminal's Ctrl-C would), even
// one that does not read the stdin it is sent, and
// that a second enter waits for the first to end: the agent's enter port
// takes one session at a time.
func kvmEnterSignalAndQueue(t *testing.T, e *env, uuid string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := e.cmd(ctx, "enter", uuid, "/bin/sh", "-c", "trap 'echo got-int; exit 9' INT; echo started; while :; do sleep 0.1; done")
	var fout testutil.SyncBuffer
	first.Stdout = &fout
	// Endless stdin that the command never reads: the signal must still
	// get through (the host keeps only a window of stdin in flight).
	first.Stdin = endless{}
	first.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !strings.Contains(fout.String(), "started"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first enter never started: %q", fout.String())
		}
	}
	second := e.cmd(ctx, "enter", uuid, "/bin/echo", "second")
	var sout testutil.SyncBuffer
	second.Stdout = &sout
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("the second enter ended (%v, %q) while the first ran", err, sout.String())
	case <-time.After(2 * time.Second):
	}
	if err := syscall.Kill(-first.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := first.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 9 || !strings.Contains(fout.String(), "got-int") {
		t.Errorf("the first enter after SIGINT: %v, %q; want exit 9 and got-int", err, fout.String())
	}
	if err := <-done; err != nil || sout.String() != "second\n" {
		t.Errorf("the second enter: %v, %q", err, sout.String())
	}
}

// endless is a reader that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'y'
	}
	return len(p), nil
}

// TestKvmTwoPodsAtOnce runs two kvm pods side by side. Each pod's
// virtiofsd is started in its pod directory with the same relative socket
// path and locks a pid file named after it under /run/virtiofsd: before
// each launcher gave its virtiofsd a private /run/virtiofsd, the second
// pod failed with virtiofsd's "Cannot lock pid file".
func TestKvmTwoPodsAtOnce(t *testing.T) {
	e := newEnv(t)
	// One run first: it imports the stage1 and renders the trees, which
	// the two then share.
	e.ok(kvmRunArgs(t, "--net=none", busybox(t), "--exec=/bin/true")...)
	var wg sync.WaitGroup
	rs := make([]result, 2)
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i] = e.run(kvmRunArgs(t, "--net=none", busybox(t), "--exec=/bin/sh", "--", "-c", "sleep 2; echo pod-"+strconv.Itoa(i))...)
		}()
	}
	wg.Wait()
	for i, r := range rs {
		if r.code != 0 || !strings.Contains(r.stdout, "pod-"+strconv.Itoa(i)) {
			t.Errorf("pod %d: exit %d, stdout %q, stderr %q", i, r.code, r.stdout, r.stderr)
		}
	}
	e.ok("gc", "--grace-period=0s")
	assertPodsGone(t, e)
}

// TestKvmReadyIsTheAppsStart: a kvm pod is ready once its apps have
// started, as on nspawn, even when its app exits before the guest's agent
// is up (the pod then ends before the guest's readiness socket, which
// also waits for the agent, has started: it used to end without `ready`);
// and a pod whose app never starts is not marked ready, however the
// agent's start and the app's reap race.
func TestKvmReadyIsTheAppsStart(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name  string
		exec  string
		ok    bool
		ready bool
	}{
		{"exits at once", "--exec=/bin/true", true, true},
		{"never starts", "--exec=/no/such/program", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			uuidFile := filepath.Join(t.TempDir(), "uuid")
			r := e.run(kvmRunArgs(t, "--net=none", "--uuid-file-save="+uuidFile, busybox(t), tt.exec)...)
			if (r.code == 0) != tt.ok {
				t.Fatalf("run exited %d, want success %v; stderr %q", r.code, tt.ok, r.stderr)
			}
			dirs, err := filepath.Glob(filepath.Join(e.dir, "pods", "*", readUUID(t, uuidFile)))
			if err != nil || len(dirs) != 1 {
				t.Fatalf("the pod's directory: %v %v", dirs, err)
			}
			_, err = os.Lstat(filepath.Join(dirs[0], "ready"))
			if ready := err == nil; ready != tt.ready {
				t.Errorf("ready file %v, want %v (stderr %q)", ready, tt.ready, r.stderr)
			}
		})
	}
}
