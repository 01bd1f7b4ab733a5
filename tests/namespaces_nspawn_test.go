//go:build functional && nspawn

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNspawnAppPID1: with --pid1 the app's own process is pid 1 of its
// PID namespace (its /proc/1/cmdline is its own command), without it
// the stage1's init is; the exit status is the app's either way, enter
// joins a pid 1 app, and a stage1 older than interface version 14 (fly)
// is refused.
func TestNspawnAppPID1(t *testing.T) {
	e := newEnv(t)
	const script = `tr '\0' ' ' < /proc/1/cmdline; echo; exit 5`
	r := e.nspawnSh(script, "--pid1")
	if r.code != 5 {
		t.Fatalf("--pid1: exit %d, want the app's 5\n%s", r.code, r.stderr)
	}
	if got := strings.TrimSpace(r.stdout); got != "/bin/sh -c "+script {
		t.Errorf("--pid1: /proc/1/cmdline is %q, want the app's command", got)
	}
	r = e.nspawnSh(script)
	if r.code != 5 {
		t.Fatalf("without --pid1: exit %d, want the app's 5\n%s", r.code, r.stderr)
	}
	if got := strings.TrimSpace(r.stdout); !strings.Contains(got, "app-init") {
		t.Errorf("without --pid1: /proc/1/cmdline is %q, want the stage1's app-init", got)
	}
	e.fails("cannot make the app pid 1", "--insecure-options=image", "run", "--stage1-from-dir=stage1-fly.aci",
		busybox(t), "--pid1", "--exec=/bin/true")

	p := startPod(t, e, 60*time.Second, []string{"up"}, nspawnRunArgs(t, busybox(t), "--pid1", "--exec=/bin/sh", "--", "-c", "echo up; exec sleep 600")...)
	// The shell says "up" just before it execs sleep: an enter that
	// comes between the two sees the shell.
	var got string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = strings.TrimSpace(e.ok("enter", p.uuid, "cat", "/proc/1/cmdline").stdout); got == "sleep\x00600\x00" {
			break
		}
	}
	if got != "sleep\x00600\x00" {
		t.Errorf("entered into a pid 1 app: /proc/1/cmdline is %q, want the app's sleep 600", got)
	}
	p.stop(t, e)
	assertPodsGone(t, e)
}

// TestNspawnIPCParent: with --ipc=parent the apps, and what enter runs
// in them, see a SysV shared memory segment made on the host (the
// host's IPC namespace); without it they do not. --private-users, whose
// pod cannot join the host's namespace, is refused with it.
func TestNspawnIPCParent(t *testing.T) {
	e := newEnv(t)
	out, err := exec.Command("ipcmk", "-M", "4096").Output()
	if err != nil {
		t.Fatalf("ipcmk: %v", err)
	}
	id := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Shared memory id:"))
	t.Cleanup(func() { _ = exec.Command("ipcrm", "-m", id).Run() }) //nolint:gosec // G204: the id ipcmk printed
	hostNS, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Fatal(err)
	}
	// The segment's id is the second field of /proc/sysvipc/shm.
	const probe = `readlink /proc/self/ns/ipc; awk 'NR > 1 { print "shmid", $2 }' /proc/sysvipc/shm`
	for _, tt := range []struct {
		name  string
		flags []string
		host  bool
	}{
		{name: "parent", flags: []string{"--ipc=parent"}, host: true},
		{name: "private", flags: []string{"--ipc=private"}},
		{name: "default"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(append(nspawnRunArgs(t, tt.flags...), busybox(t), "--exec=/bin/sh", "--", "-c", probe)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got := strings.Contains(r.stdout, hostNS); got != tt.host {
				t.Errorf("the app in the host's IPC namespace %s: %v, want %v\n%s", hostNS, got, tt.host, r.stdout)
			}
			if got := strings.Contains(r.stdout, "shmid "+id+"\n"); got != tt.host {
				t.Errorf("the host's segment %s seen: %v, want %v\n%s", id, got, tt.host, r.stdout)
			}
		})
	}
	p := startPod(t, e, 60*time.Second, []string{"up"}, nspawnRunArgs(t, "--ipc=parent", busybox(t), "--exec=/bin/sh", "--", "-c", "echo up; exec sleep 600")...)
	if got := e.ok("enter", p.uuid, "/bin/sh", "-c", probe).stdout; !strings.Contains(got, hostNS) || !strings.Contains(got, "shmid "+id+"\n") {
		t.Errorf("entered into an app of an --ipc=parent pod: %q, want the host's namespace %s and segment %s", got, hostNS, id)
	}
	p.stop(t, e)
	e.fails("cannot join the host's IPC namespace", append(nspawnRunArgs(t, "--ipc=parent", "--private-users"), busybox(t), "--exec=/bin/true")...)
	assertPodsGone(t, e)
}

// TestNspawnPIDParent: with --pid=parent the app is a process of the
// host's PID namespace (run's spawner started it): the pid it reads for
// itself is the one the host sees for it, with the app's command line;
// its /proc is the host's, in which enter, which stays in that
// namespace, finds it; its exit status and a stop reach it through the
// helper; nothing is left once the pod is gone. Without the flag the
// app's namespace is its own. --private-users is refused with it, and
// so are a stage1 older than interface version 15 (fly) and a mode no
// stage1 has.
func TestNspawnPIDParent(t *testing.T) {
	e := newEnv(t)
	hostNS, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	const probe = `readlink /proc/self/ns/pid; exit 7`
	for _, tt := range []struct {
		name  string
		flags []string
		host  bool
	}{
		{name: "parent", flags: []string{"--pid=parent"}, host: true},
		{name: "private", flags: []string{"--pid=private"}},
		{name: "default"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(append(nspawnRunArgs(t, tt.flags...), busybox(t), "--exec=/bin/sh", "--", "-c", probe)...)
			if r.code != 7 {
				t.Fatalf("exit %d, want the app's 7: %s", r.code, r.stderr)
			}
			if got := strings.Contains(r.stdout, hostNS); got != tt.host {
				t.Errorf("the app in the host's PID namespace %s: %v, want %v\n%s", hostNS, got, tt.host, r.stdout)
			}
		})
	}
	p := startPod(t, e, 60*time.Second, []string{"pid "}, nspawnRunArgs(t, "--pid=parent", busybox(t), "--exec=/bin/sh", "--", "-c", "echo pid $$; exec sleep 600")...)
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for pid == 0 && time.Now().Before(deadline) {
		if _, err := fmt.Sscanf(p.out.String()[strings.Index(p.out.String(), "pid "):], "pid %d\n", &pid); err != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if pid == 0 {
		t.Fatalf("no pid line from the app: %q", p.out.String())
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || string(cmdline) != "sleep\x00600\x00" {
		t.Fatalf("the host's process %d is %q (%v), want the app's sleep 600", pid, cmdline, err)
	}
	if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || ns != hostNS {
		t.Errorf("the app's PID namespace is %q (%v), want the host's %s", ns, err, hostNS)
	}
	got := e.ok("enter", p.uuid, "/bin/sh", "-c", "readlink /proc/self/ns/pid; pidof sleep").stdout
	if !strings.Contains(got, hostNS) || !slices.Contains(strings.Fields(got), strconv.Itoa(pid)) {
		t.Errorf("entered into the app: %q, want the host's namespace %s and the app's pid %d", got, hostNS, pid)
	}
	e.ok("stop", p.uuid)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the pod did not stop: %s", p.errb.String())
	}
	// The helper relayed the stop and read the app's end.
	if strings.Contains(p.errb.String(), "wait for it") {
		t.Errorf("the helper lost the app's end at the stop: %s", p.errb.String())
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); string(c) == "sleep\x00600\x00" {
			t.Errorf("the app's process %d outlived its pod", pid)
		}
	}
	e.fails("cannot be in the host's PID namespace", append(nspawnRunArgs(t, "--pid=parent", "--private-users"), busybox(t), "--exec=/bin/true")...)
	// fly (interface version 6) does not speak --pid: refused before
	// the pod starts.
	e.fails("has no --pid (needs 15)", "--insecure-options=image", "run", "--stage1-from-dir=stage1-fly.aci", "--pid=parent", busybox(t), "--exec=/bin/true")
	e.fails(`--pid "host"`, append(nspawnRunArgs(t, "--pid=host"), busybox(t), "--exec=/bin/true")...)
	assertPodsGone(t, e)
}
