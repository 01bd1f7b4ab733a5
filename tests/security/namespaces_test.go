//go:build functional

package security

import (
	"slices"
	"strings"
	"testing"
)

// TestHostIPCBindOutOfAppsReach: in a pod run with --ipc=parent, run
// binds the host's IPC namespace at /nscn/ns/ipc in the pod's root for
// the app helper. An app running as root with appc's default
// capabilities looks for it (its own root, the roots of the processes
// it sees): its root is its own rootfs, so the bind, and the pod's root,
// are out of its reach; what it gets is the host's IPC namespace itself,
// which is what --ipc=parent asks.
func TestHostIPCBindOutOfAppsReach(t *testing.T) {
	e := newEnv(t)
	attacker := image{name: "example.com/attacker", app: app("0", "0",
		"/attack", "in", "stat:/nscn/ns/ipc", "ls:/nscn", "procroots:")}
	r := e.run(runArgs(t, nspawn, "--ipc=parent", attacker.build(t))...)
	t.Logf("attack output:\n%s", r.stdout)
	if r.code != 0 {
		t.Fatalf("the pod failed: %s", r)
	}
	for _, want := range []string{"err stat:/nscn/ns/ipc", "err ls:/nscn"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the attacker reached the pod's root (want %q): %s", want, r.stdout)
		}
	}
	// The only other process it sees is the stage1's init, which is
	// not dumpable: no root through /proc.
	for _, line := range strings.Split(r.stdout, "\n") {
		if rest, ok := strings.CutPrefix(line, "ok procroots:"); ok && strings.TrimSpace(rest) != "" {
			t.Errorf("the attacker reached roots through /proc: %s", rest)
		}
	}
}

// TestPID1AppSeesNoOtherApp is class 10 of Documentation/security.md
// for an app that is pid 1 of its PID namespace (--pid1, the CRI's
// CONTAINER mode): with no init of the stage1's, its namespace is still
// its own, and its /proc shows itself alone, not the other app's
// processes or roots.
func TestPID1AppSeesNoOtherApp(t *testing.T) {
	e := newEnv(t)
	victim := image{
		name:  "example.com/victim",
		app:   app("0", "0", "/bin/sh", "-c", "sleep 6"),
		files: []file{{path: "/victim-secret", content: "secret\n"}},
	}
	attacker := image{name: "example.com/attacker", app: app("0", "0",
		"/bin/sh", "-c", "sleep 2; exec /attack in procroots: ls:/proc")}
	r := e.run(runArgs(t, nspawn, victim.build(t), "---", attacker.build(t), "--pid1")...)
	t.Logf("attack output:\n%s", r.stdout)
	if r.code != 0 {
		t.Fatalf("the pod failed: %s", r)
	}
	if strings.Contains(r.stdout, "victim-secret") {
		t.Errorf("the attacker reached the victim's root: %s", r.stdout)
	}
	// Its shell, pid 1, exec'd it: nothing else is in the namespace.
	if pids := procPIDs(t, r.stdout); !slices.Equal(pids, []string{"1"}) {
		t.Errorf("the pid 1 attacker's /proc shows processes %v, want its own pid 1 alone", pids)
	}
}
