//go:build functional && fly

package tests

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/mountplan"
)

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return 0
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		t.Fatalf("wait: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("nscn run did not exit")
	}
	return -1
}

// mountsUnder lists the mounts below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	m, err := mountplan.MountPointsUnder(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFlyListStatusEnterStopGC(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	flags := []string{"--mount", "volume=m,target=/m"}
	script := `trap 'echo stopped > /m/stopped; exit 0' TERM; echo $$ > /m/pid; while :; do sleep 0.1; done`
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	args := []string{"--insecure-options=image", "run", "--uuid-file-save", uuidFile, "--volume", "m,kind=host,source=" + host, busybox(t)}
	args = append(append(args, flags...), "--exec=/bin/sh", "--", "-c", script)
	cmd := e.cmd(t.Context(), args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	var uuid string
	for deadline := time.Now().Add(20 * time.Second); uuid == ""; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(uuidFile); err == nil { //nolint:gosec // G304: a file the test made
			uuid = strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatal("pod did not start")
		}
	}
	e.ok("status", "--wait-ready=20s", uuid)

	// list and status, from a second process while the pod runs.
	var pods []map[string]any
	if err := json.Unmarshal([]byte(e.ok("list", "--format=json").stdout), &pods); err != nil || len(pods) != 1 {
		t.Fatalf("list: %v %v", pods, err)
	}
	if pods[0]["state"] != "running" {
		t.Fatalf("list state %v", pods[0]["state"])
	}
	st := statusMap(t, e, uuid)
	// fly cannot tell when the app has started: running with a pid is ready.
	if st["state"] != "running" || st["pid"] == "" || st["ready"] != "true" {
		t.Fatalf("status %v", st)
	}
	// gc while the pod runs leaves it alone.
	e.ok("gc", "--grace-period=0s")
	if st := statusMap(t, e, uuid); st["state"] != "running" {
		t.Fatalf("gc disturbed the running pod: %v", st)
	}

	// enter runs a command in the app's view: its files, its volume.
	r := e.ok("enter", uuid, "/bin/sh", "-c", "cat /m/pid; test -x /bin/busybox && echo in-image")
	if lines := strings.Fields(r.stdout); len(lines) != 2 || lines[1] != "in-image" {
		t.Fatalf("enter output %q", r.stdout)
	}
	if r := e.run("enter", uuid, "/bin/sh", "-c", "exit 9"); r.code != 9 {
		t.Fatalf("enter exit %d, want 9", r.code)
	}

	// stop ends the app cleanly: its TERM trap runs, run exits 0.
	e.ok("stop", uuid)
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("nscn run exited %d after stop", code)
	}
	if b, err := os.ReadFile(filepath.Join(host, "stopped")); err != nil || strings.TrimSpace(string(b)) != "stopped" { //nolint:gosec // G304: a file the test made
		t.Fatalf("the app's TERM handler did not run: %q %v", b, err)
	}
	st = statusMap(t, e, uuid)
	if st["state"] != "exited" || st["app-busybox"] != "0" {
		t.Fatalf("status after stop: %v", st)
	}

	// gc: first mark, then sweep; nothing is left: no pod, no mount.
	e.ok("gc", "--grace-period=0s")
	e.ok("gc", "--grace-period=0s")
	if r := e.ok("list", "--no-legend"); strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("pods left after gc: %s", r.stdout)
	}
	assertNoPods(t, e)
	if m := mountsUnder(t, e.dir); len(m) != 0 {
		t.Fatalf("mounts left after gc: %v", m)
	}
}

func TestFlyKilledRunLeavesNoApp(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.cmd(t.Context(), "--insecure-options=image", "run", "--uuid-file-save", uuidFile,
		"--volume", "m,kind=host,source="+host, busybox(t), "--mount", "volume=m,target=/m",
		"--exec=/bin/sh", "--", "-c", "echo $$ > /m/pid; exec sleep 1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(host, "pid")
	var appPID int
	for deadline := time.Now().Add(20 * time.Second); appPID == 0; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil { //nolint:gosec // G304: a file the test made
			appPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			t.Fatal("app did not start")
		}
	}
	// SIGKILL nscn run (the stage1 it became): the app must go too.
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(appPID, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("app %d still running after nscn run was killed", appPID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	uuid := strings.TrimSpace(readFile(t, uuidFile))
	if st := statusMap(t, e, uuid); st["state"] != "exited" {
		t.Fatalf("killed pod is %v, want exited", st)
	}
	e.ok("rm", uuid)
	assertNoPods(t, e)
	if m := mountsUnder(t, e.dir); len(m) != 0 {
		t.Fatalf("mounts left after rm: %v", m)
	}
}

func TestFlySignalToRunStopsTheApp(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	cmd := e.cmd(t.Context(), "--insecure-options=image", "run",
		"--volume", "m,kind=host,source="+host, busybox(t), "--mount", "volume=m,target=/m",
		"--exec=/bin/sh", "--", "-c", "trap 'echo int > /m/sig; exit 130' INT; touch /m/ready; while :; do sleep 0.1; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(host, "ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("app did not start")
		}
	}
	// What Ctrl-C sends to the foreground process.
	_ = cmd.Process.Signal(syscall.SIGINT)
	if code := exitCode(t, cmd); code != 130 {
		t.Fatalf("nscn run exited %d after SIGINT, want the app's 130", code)
	}
	if strings.TrimSpace(readFile(t, filepath.Join(host, "sig"))) != "int" {
		t.Fatal("the app did not see SIGINT")
	}
}

func TestFlyExportSeesWhatTheAppChanged(t *testing.T) {
	e := newEnv(t)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.ok("--insecure-options=image", "run", "--uuid-file-save", uuidFile, busybox(t),
		"--exec=/bin/sh", "--", "-c", "echo changed > /etc/created-by-app; rm /etc/group")
	uuid := strings.TrimSpace(readFile(t, uuidFile))
	out := filepath.Join(t.TempDir(), "exported.aci")
	e.ok("export", uuid, out)
	list, err := exec.Command("tar", "tf", out).Output() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	if err != nil {
		t.Fatal(err)
	}
	names := string(list)
	if !strings.Contains(names, "rootfs/etc/created-by-app") || strings.Contains(names, "rootfs/etc/group\n") || !strings.Contains(names, "rootfs/bin/busybox") {
		t.Fatalf("exported image does not reflect the app's changes:\n%s", names)
	}
	// The rendered tree in the store was never written.
	e.ok("image", "verify")
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
