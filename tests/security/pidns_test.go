//go:build functional

package security

import (
	"slices"
	"strings"
	"testing"
)

// TestAppsSeeNoOtherAppsProcesses is class 10 of Documentation/security.md:
// an app of a two-app pod that runs as root with appc's default
// capabilities, as the other app does, looks for the other app's
// processes and reads their roots through /proc/PID/root (the kernel's
// ptrace access rule lets a process of the same user and capabilities do
// that). Each app has a PID namespace of its own: the attacker's /proc
// shows two processes, the namespace's init (pid 1, the stage1's, which
// it may not inspect) and itself, and no root it reaches is the victim's.
func TestAppsSeeNoOtherAppsProcesses(t *testing.T) {
	e := newEnv(t)
	victim := image{
		name:  "example.com/victim",
		app:   app("0", "0", "/bin/sh", "-c", "sleep 6"),
		files: []file{{path: "/victim-secret", content: "secret\n"}},
	}
	attacker := image{name: "example.com/attacker", app: app("0", "0",
		"/bin/sh", "-c", "sleep 2; exec /attack in procroots: ls:/proc")}
	r := e.run(runArgs(t, nspawn, victim.build(t), "---", attacker.build(t))...)
	t.Logf("attack output:\n%s", r.stdout)
	if r.code != 0 {
		t.Fatalf("the pod failed: %s", r)
	}
	if strings.Contains(r.stdout, "victim-secret") {
		t.Errorf("the attacker reached the victim's root: %s", r.stdout)
	}
	pids := procPIDs(t, r.stdout)
	// Its shell exec'd it: the init and the attacker, nothing else.
	if len(pids) != 2 || !slices.Contains(pids, "1") {
		t.Errorf("the attacker's /proc shows processes %v, want pid 1 (its init) and its own", pids)
	}
}

// TestEnteredCommandSeesOnlyItsApp is class 10 through enter: a command
// entered into one app of a two-app pod is born in that app's PID
// namespace, so it sees that app's processes and not the other app's.
func TestEnteredCommandSeesOnlyItsApp(t *testing.T) {
	e := newEnv(t)
	victim := image{
		name:  "example.com/victim",
		app:   app("0", "0", "/bin/sh", "-c", "sleep 60"),
		files: []file{{path: "/victim-secret", content: "secret\n"}},
	}
	attacker := image{name: "example.com/attacker", app: app("0", "0", "/bin/sleep", "60")}
	uuid := e.start(runArgs(t, nspawn, victim.build(t), "---", attacker.build(t))...)
	r := e.ok("enter", "--app=attacker", uuid, "/attack", "in", "procroots:", "ls:/proc")
	t.Logf("attack output:\n%s", r.stdout)
	if strings.Contains(r.stdout, "victim-secret") {
		t.Errorf("the entered command reached the victim's root: %s", r.stdout)
	}
	if pids := procPIDs(t, r.stdout); len(pids) != 3 {
		t.Errorf("the entered command's /proc shows processes %v, want 3: its app's init, its app, itself", pids)
	}
}

// procPIDs returns the process IDs in the attacker's "ok ls:/proc" line
// of out, failing the test when it printed none.
func procPIDs(t *testing.T, out string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "ok ls:/proc ")
		if !ok {
			continue
		}
		var pids []string
		for _, name := range strings.Split(rest, ",") {
			if name != "" && name[0] >= '0' && name[0] <= '9' {
				pids = append(pids, name)
			}
		}
		return pids
	}
	t.Fatalf("the attacker did not list its /proc: %s", out)
	return nil
}
