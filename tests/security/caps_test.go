//go:build functional

package security

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCapabilitiesBeyondDefaultNeedConsent is class 7 of
// Documentation/security.md: an image whose isolator asks for
// CAP_SYS_ADMIN, which appc's default set leaves out, to get it without
// the operator's say (Documentation/isolators.md, "Capabilities beyond
// the default set"). Without consent the run is refused by stage0 (exit
// 2, one line naming the capability and the flag that grants it, no pod
// left); with --caps-retain=CAP_SYS_ADMIN for the app it runs, and under
// nspawn with CAP_SYS_ADMIN alone in its bounding set.
func TestCapabilitiesBeyondDefaultNeedConsent(t *testing.T) {
	a := app("0", "0", "/bin/sh", "-c", "grep ^CapBnd: /proc/self/status")
	a["isolators"] = []map[string]any{{"name": "os/linux/capabilities-retain-set", "value": map[string]any{"set": []string{"CAP_SYS_ADMIN"}}}}
	aci := image{name: "example.com/sysadmin", app: a}.build(t)
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			e := newEnv(t)
			r := e.refused(2, "CAP_SYS_ADMIN", runArgs(t, f, aci)...)
			oneLine(t, r)
			if !strings.Contains(r.stderr, "--caps-retain=CAP_SYS_ADMIN") {
				t.Errorf("the refusal does not say how to consent: %q", r.stderr)
			}
			if pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*")); len(pods) != 0 {
				t.Fatalf("a refused run left pods: %v", pods)
			}

			r = e.ok(runArgs(t, f, aci, "--caps-retain=CAP_SYS_ADMIN")...)
			if f == nspawn && !strings.Contains(r.stdout, "CapBnd:\t0000000000200000") {
				t.Fatalf("the app's bounding set is not CAP_SYS_ADMIN alone: %q", r.stdout)
			}
		})
	}
}
