//go:build functional

package security

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHostPIDSocketOutOfAppsReach: in a pod run with --pid=parent, run
// serves its spawner at /nscn/ns/hostpid.sock in the pod's root. An app
// running as root with appc's default capabilities (itself in the
// host's PID namespace) looks for it: its root is its own rootfs, so the
// socket is out of its reach.
func TestHostPIDSocketOutOfAppsReach(t *testing.T) {
	e := newEnv(t)
	attacker := image{name: "example.com/attacker", app: app("0", "0",
		"/attack", "in", "stat:/nscn/ns/hostpid.sock", "hostpid:/nscn/ns/hostpid.sock,attacker,stdio", "ls:/nscn")}
	r := e.run(runArgs(t, nspawn, "--pid=parent", attacker.build(t))...)
	t.Logf("attack output:\n%s", r.stdout)
	if r.code != 0 {
		t.Fatalf("the pod failed: %s", r)
	}
	for _, want := range []string{"err stat:/nscn/ns/hostpid.sock", "err hostpid:/nscn/ns/hostpid.sock", "err ls:/nscn"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the attacker reached the spawner or the pod's root (want %q): %s", want, r.stdout)
		}
	}
}

// TestHostPIDSpawnerRefusesCallers holds each check of the host PID
// spawner (Documentation/security.md, "The host PID spawner") to a
// case, in a mutable pod run with --pid=parent that has an app running
// ("running") and one added but not started ("idle"). The attacker is
// the containment suite's attack binary, put in the pod's root, as a
// process of the pod's root could put it, and run there with nsenter.
func TestHostPIDSpawnerRefusesCallers(t *testing.T) {
	e := newEnv(t)
	uuid := e.start("--insecure-options=image", "app", "sandbox", "--net=host", "--pid=parent", stage1Flag(t, nspawn))
	e.ok("--insecure-options=image", "app", "add", uuid, busyboxACI(t), "--name=running", "--exec=/bin/sleep", "--", "300")
	e.ok("app", "start", uuid, "--app=running")
	e.ok("--insecure-options=image", "app", "add", uuid, busyboxACI(t), "--name=idle", "--exec=/bin/sleep", "--", "300")
	podDir := e.podDir()
	root := filepath.Join(podDir, "stage1", "rootfs")
	attack, err := os.ReadFile(mustEnv(t, "NSCN_ATTACK"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "nscn-attack"), attack, 0o755); err != nil { //nolint:gosec // G306: an executable, as an attacker would plant it
		t.Fatal(err)
	}
	pod1 := podSystemdPID(t, podDir)
	podCgroup := filepath.Dir(unifiedCgroup(t, pod1)) // the pod's systemd sits in init.scope
	const sock = "/nscn/ns/hostpid.sock"
	ask := func(app, fds string) string { return "hostpid:" + sock + "," + app + "," + fds }

	// A process of the host, which found the socket in the pod directory.
	host := exec.Command(mustEnv(t, "NSCN_ATTACK"), "in", "hostpid:hostpid.sock,running,stdio") //nolint:gosec // G204: the suite's attack binary
	host.Dir = filepath.Join(root, "nscn", "ns")
	out, _ := host.Output()
	wantRefused(t, "a process of the host", string(out), "not in the pod's PID namespace")

	// In the pod's root, in the host's PID namespace.
	out, _ = exec.Command("nsenter", "-t", strconv.Itoa(pod1), "-m", "-r", "-w", "--", "/nscn-attack", "in", ask("running", "stdio")).Output() //nolint:gosec // G204: nsenter, the pod's pid
	wantRefused(t, "the pod's root in the host's PID namespace", string(out), "not in the pod's PID namespace")

	// In the pod's root and PID namespace, outside every app's unit.
	out, _ = exec.Command("nsenter", "-t", strconv.Itoa(pod1), "-p", "-m", "-r", "-w", "--", "/nscn-attack", "in", ask("running", "stdio"), ask("idle", "stdio")).Output() //nolint:gosec // G204: nsenter, the pod's pid
	wantRefused(t, "the pod's root outside the apps' units", string(out), "not in its unit's")

	// Moved into the running app's unit: another app's name, then its
	// own again.
	got := inUnit(t, pod1, filepath.Join(podCgroup, "system.slice", "app-running.service"), ask("idle", "stdio,wait"), ask("running", "stdio"))
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 {
		t.Fatalf("the attacker in the running app's unit: %q", got)
	}
	wantRefused(t, "a forged app name", lines[0], "not in its unit's")
	wantRefused(t, "a second start of the running app", lines[1], "already")

	// In the unit of the app not started yet (made as the pod's root
	// could make it): descriptors that are not stdio, and bad requests.
	idleUnit := filepath.Join(podCgroup, "system.slice", "app-idle.service")
	if err := os.Mkdir(filepath.Join("/sys/fs/cgroup/unified", idleUnit), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(filepath.Join("/sys/fs/cgroup/unified", idleUnit)) })
	got = inUnit(t, pod1, idleUnit, ask("idle", "dir,wait"), ask("idle", "opath"), ask("idle", "four"), ask("idle", "none"), ask("idle", "garbage"))
	lines = strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 5 {
		t.Fatalf("the attacker in the idle app's unit: %q", got)
	}
	for i, want := range []string{"neither a pipe", "O_PATH", "descriptors", "descriptors", "unknown kind"} {
		wantRefused(t, "a bad request", lines[i], want)
	}
	// The spawner still serves the pod's own helpers.
	e.ok("app", "start", uuid, "--app=idle")
	got = e.ok("app", "exec", uuid, "--app=idle", "--", "/bin/sh", "-c", "pidof sleep | wc -w").stdout
	if n, _ := strconv.Atoi(strings.TrimSpace(got)); n < 2 {
		t.Errorf("the idle app, started after the attacks, sees %q sleeps in the host's PID namespace, want both apps'", got)
	}
}

// wantRefused fails the test unless the attack's output line says the
// spawner refused, for the reason want.
func wantRefused(t *testing.T, what, out, want string) {
	t.Helper()
	t.Logf("%s: %s", what, strings.TrimSpace(out))
	if strings.Contains(out, "ok hostpid:") || !strings.Contains(out, "err hostpid:") || !strings.Contains(out, want) {
		t.Errorf("%s: %q, want the spawner's refusal (%q)", what, out, want)
	}
}

// inUnit runs the attack with ops in the pod's root and PID namespace,
// moves it into the cgroup unit (v2 path, as /proc/PID/cgroup says) once
// it is connected (its first op waits), and returns its output after
// "connected".
func inUnit(t *testing.T, pod1 int, unit string, ops ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pod1), "-p", "-m", "-r", "-w", "--", "/nscn-attack", "in"}, ops...)...) //nolint:gosec // G204: nsenter, the pod's pid
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(stdout)
	if line, err := br.ReadString('\n'); err != nil || line != "connected\n" {
		_ = c.Process.Kill()
		_ = c.Wait()
		t.Fatalf("the attacker did not connect: %q, %v", line, err)
	}
	// nsenter forks the attacker into the pod's PID namespace: its child.
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", c.Process.Pid, c.Process.Pid))
	pid := strings.TrimSpace(string(kids))
	if err != nil || pid == "" {
		t.Fatalf("no attacker process below nsenter: %v", err)
	}
	if err := os.WriteFile(filepath.Join("/sys/fs/cgroup/unified", unit, "cgroup.procs"), []byte(pid), 0); err != nil { //nolint:gosec // G703: the pod's cgroup, as the kernel names it
		t.Fatalf("move the attacker into %s: %v", unit, err)
	}
	_, _ = io.WriteString(stdin, "\n")
	rest, _ := io.ReadAll(br)
	_ = c.Wait()
	return string(rest)
}

// podSystemdPID is the pid of the pod's systemd: the child of the
// systemd-nspawn process whose pid the pod directory's ppid file holds.
func podSystemdPID(t *testing.T, podDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(podDir, "ppid")) //nolint:gosec // G304: the pod's own file
	if err != nil {
		t.Fatal(err)
	}
	ppid := strings.TrimSpace(string(b))
	kids, err := os.ReadFile(filepath.Join("/proc", ppid, "task", ppid, "children")) //nolint:gosec // G304: a /proc file of the pod's systemd-nspawn
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(kids)))
	if err != nil {
		t.Fatalf("systemd-nspawn's children: %q", kids)
	}
	return pid
}

// unifiedCgroup is the cgroup v2 path of process pid.
func unifiedCgroup(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p
		}
	}
	t.Fatalf("process %d has no cgroup v2 membership: %s", pid, b)
	return ""
}
