//go:build functional

package security

import (
	"bufio"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusForgery is class 2 of Documentation/security.md: an app of a
// two-app pod writes the other app's exit status, so that the pod ends
// early and run and status report success for an app that failed. The
// victim's status must be its own.
func TestStatusForgery(t *testing.T) {
	e := newEnv(t)
	victim := image{name: "example.com/victim", app: app("0", "0", "/bin/sh", "-c", "sleep 2; exit 7")}
	attacker := image{name: "example.com/attacker", app: app("0", "0",
		"/attack", "escape", "write:/rkt/status/victim=0", "write:/rkt/status/attacker=0")}
	r := e.run(runArgs(t, nspawn, victim.build(t), "---", attacker.build(t))...)
	t.Logf("attack output:\n%s", r.stdout)
	if r.code != 7 {
		t.Errorf("run exited %d, want the victim's 7: %s", r.code, r)
	}
	if strings.Contains(r.stdout, "ok write:") {
		t.Errorf("the attacker wrote a status file: %s", r.stdout)
	}
	uuid := filepath.Base(e.podDir())
	st := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(e.ok("status", uuid).stdout))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			st[k] = v
		}
	}
	if st["app-victim"] != "7" {
		t.Errorf("status says the victim exited %q, want 7 (%v)", st["app-victim"], st)
	}
}
