//go:build functional && kvm

package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKvmAppSandbox drives a mutable pod on stage1-kvm as a user would:
// a sandbox with no app on the default network and a host volume, an app
// added and started that writes to stdout and stderr, reads the volume
// and exits 7 (its status and its output in nscn logs), a second app
// started, entered with app exec, stopped (its status from its TERM
// trap), both removed (no unit, mount, slot or file of theirs left, in
// the pod directory or in virtiofsd's mount namespace), then the pod
// stopped and garbage collected, leaving no qemu, virtiofsd, tap device,
// network namespace or rule. One boot: each costs seconds under TCG.
func TestKvmAppSandbox(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "greeting"), []byte("hello from the volume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPod(t, e, 100*time.Second, nil, "--insecure-options=image", "app", "sandbox", "--stage1-path="+kvmACI(t),
		"--net=default", "--volume=data,kind=host,source="+vol)
	uuid := p.uuid
	podDir := filepath.Join(e.dir, "pods", "run", uuid)
	// Under TCG the guest takes a while to boot, and the first kvm pod
	// on a host may pay the accelerator check (20 s) before it: wait for
	// the pod's ready file before the first app command, which waits
	// only 30 s.
	for deadline := time.Now().Add(100 * time.Second); ; {
		if _, err := os.Stat(filepath.Join(podDir, "ready")); err == nil {
			break
		}
		select {
		case <-p.done:
			t.Fatalf("the sandbox ended before it was ready: %v\n%s", p.err, p.errb.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sandbox was not ready after 100 s:\n%s", p.errb.String())
		}
	}

	e.ok("--insecure-options=image", "app", "add", uuid, busybox(t), "--name=greeter", "--mount", "volume=data,target=/data",
		"--exec=/bin/sh", "--", "-c", "echo hello out; echo hello err >&2; cat /data/greeting; exit 7")
	e.ok("--insecure-options=image", "app", "add", uuid, busybox(t), "--name=server",
		"--exec=/bin/sh", "--", "-c", "trap 'exit 3' TERM; echo server up; while :; do sleep 1; done")
	for _, a := range []string{"greeter", "server"} {
		if st := e.appStatus(uuid, a); st.State != "created" || st.Created == "" || st.Started != "" {
			t.Fatalf("app %s after add: %+v", a, st)
		}
	}
	e.fails("two apps are named", "--insecure-options=image", "app", "add", uuid, busybox(t), "--name=server", "--exec=/bin/true")

	e.ok("app", "start", uuid, "--app=greeter")
	st := waitAppExited(t, e, uuid, "greeter", 60*time.Second)
	if st.ExitCode == nil || *st.ExitCode != 7 || st.Finished == "" {
		t.Fatalf("greeter after it exited: %+v", st)
	}
	// Its output, through the slot's ports and run, in its log.
	var logs result
	for deadline := time.Now().Add(10 * time.Second); ; {
		logs = e.ok("logs", "--app=greeter", uuid)
		if strings.Contains(logs.stdout, "hello from the volume") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{"hello out", "hello from the volume"} {
		if !strings.Contains(logs.stdout, want) {
			t.Errorf("logs of the added app: stdout %q lacks %q", logs.stdout, want)
		}
	}
	if !strings.Contains(logs.stderr+logs.stdout, "hello err") {
		t.Errorf("logs of the added app lack its stderr: %q %q", logs.stdout, logs.stderr)
	}

	e.ok("app", "start", uuid, "--app=server")
	if st := e.appStatus(uuid, "server"); st.State != "running" || st.Started == "" || st.ExitCode != nil {
		t.Fatalf("server after start: %+v", st)
	}
	r := e.run("app", "exec", uuid, "--app=server", "--", "/bin/sh", "-c", `echo $AC_APP_NAME $(pidof sleep >/dev/null && echo sleeping); exit 5`)
	if r.code != 5 || strings.TrimSpace(r.stdout) != "server sleeping" {
		t.Errorf("app exec: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	e.ok("app", "stop", uuid, "--app=server")
	if st := e.appStatus(uuid, "server"); st.State != "exited" || st.ExitCode == nil || *st.ExitCode != 3 {
		t.Fatalf("server after stop: %+v", st)
	}

	for _, a := range []string{"greeter", "server"} {
		e.ok("app", "rm", uuid, "--app="+a)
		for _, gone := range []string{
			"stage1/rootfs/opt/stage2/" + a, "overlay/apps/" + a, "appsinfo/" + a,
			"stage1/rootfs/etc/systemd/system/app-" + a + ".service", "stage1/rootfs/nscn/io/" + a,
			"stage1/rootfs/nscn/host/app/" + a,
			"stage1/rootfs/rkt/status/" + a, "stage1/rootfs/rkt/started/" + a,
		} {
			if _, err := os.Lstat(filepath.Join(podDir, gone)); err == nil {
				t.Errorf("%s left after app rm", gone)
			}
		}
	}
	if slots, _ := os.ReadDir(filepath.Join(podDir, "kvm", "slots")); len(slots) != 0 {
		t.Errorf("output slots still held after app rm: %v", slots)
	}
	// The host's mounts of this pod (the host is shared: another test's
	// pod may have an app of the same name), and all of virtiofsd's,
	// whose namespace is this pod's.
	mi := map[string]string{"/proc/self/mountinfo": podDir + "/"}
	if pid, err := virtiofsdServer(podDir); err == nil {
		mi[filepath.Join("/proc", strconv.Itoa(pid), "mountinfo")] = ""
	} else {
		t.Errorf("virtiofsd: %v", err)
	}
	for m, under := range mi {
		b, err := os.ReadFile(m) //nolint:gosec // G304: a /proc file
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, under) {
				continue
			}
			for _, a := range []string{"greeter", "server"} {
				if strings.Contains(l, "/"+a+"/") || strings.Contains(l, "/"+a+" ") {
					t.Fatalf("mounts of the removed app %s left in %s:\n%s", a, m, b)
				}
			}
		}
	}
	if r := e.ok("app", "list", uuid); strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 {
		t.Fatalf("app list after both apps' rm: %q", r.stdout)
	}

	// The pod ends when it is stopped, with status 0: none of its apps
	// makes its status.
	e.ok("stop", uuid)
	if err := p.wait(); err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		t.Fatalf("app sandbox after stop: exit %d\n%s", code, p.errb.String())
	}
	e.fails("not running", "--insecure-options=image", "app", "add", uuid, busybox(t), "--name=late", "--exec=/bin/true")
	netGC(t, e)
	assertPodsGone(t, e)
	requireNetRestored(t, e, before)
}

// virtiofsdServer is the pid of the pod's serving virtiofsd: the child
// the pid file's process forked into its sandbox.
func virtiofsdServer(podDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(podDir, "kvm", "virtiofsd.pid")) //nolint:gosec // G304: a file of the test's pod
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, err
	}
	c, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(c))
	if len(f) != 1 {
		return 0, fmt.Errorf("virtiofsd %d has children %q, want one", pid, f)
	}
	return strconv.Atoi(f[0])
}
