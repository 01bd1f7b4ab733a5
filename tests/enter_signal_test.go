//go:build functional && nspawn

package tests

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNspawnEnterTerminated signals an `nscn enter`'s process group with
// SIGTERM, as the CRI's ExecSync does at its deadline, and checks that the
// entered command is gone from the app at once: not running, and not a
// zombie. Before enter passed SIGTERM on and stayed to reap the command,
// enter died first and the command, a process of the app's PID namespace
// whose parent was outside it, went to the host's init as a zombie, which
// the app saw until that init reaped it (on hosts whose init reaps late,
// long enough for critest's next exec to count it).
func TestNspawnEnterTerminated(t *testing.T) {
	e := newEnv(t)
	p := startPod(t, e, 10*time.Second, []string{"ready"}, nspawnRunArgs(t,
		busybox(t), "--name=sleeper", "--exec=/bin/sh", "--", "-c", "echo ready; exec sleep 300")...)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := e.cmd(ctx, "enter", p.uuid, "/bin/sleep", "4321")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the command runs in the app.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.ok("enter", p.uuid, "/bin/sh", "-c", "ps -o comm | grep -c '^sleep$'")
		if strings.TrimSpace(r.stdout) == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the entered sleep never showed in the app")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Errorf("enter exited %d (%v), want 143: the command's SIGTERM status", code, err)
	}
	// One sleep is left, the app's own: the entered one is neither running
	// nor a zombie (ps lists zombies, by the same name).
	r := e.ok("enter", p.uuid, "/bin/sh", "-c", "ps -o comm | grep -c '^sleep$'")
	if got := strings.TrimSpace(r.stdout); got != "1" {
		t.Errorf("after SIGTERM to enter, the app has %s sleeps, want the app's 1:\n%s", got, e.ok("enter", p.uuid, "ps", "-o", "pid,stat,args").stdout)
	}
	e.ok("stop", p.uuid)
	_ = p.wait()
	assertPodsGone(t, e)
}
