//go:build functional

package security

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMutablePodAppsKeepTheirBoundingSet is class 7 for mutable pods: the
// container of a pod `nscn app sandbox` starts keeps systemd-nspawn's
// whole capability bounding set, since its apps come later with
// capabilities of their own (a CRI container's add_capabilities). An app
// added without capability isolators must still get appc's default set
// alone, and a command entered into it the same, not the container's.
func TestMutablePodAppsKeepTheirBoundingSet(t *testing.T) {
	e := newEnv(t)
	uuid := e.start("--insecure-options=image", "app", "sandbox", "--net=host", stage1Flag(t, nspawn))
	e.ok("--insecure-options=image", "app", "add", uuid, busyboxACI(t), "--name=plain", "--exec=/bin/sleep", "--", "300")
	e.ok("app", "start", uuid, "--app=plain")
	// appc's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
	// SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD
	// AUDIT_WRITE SETFCAP.
	const defaultSet = "00000000a80425fb"
	var r result
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r = e.run("app", "exec", uuid, "--app=plain", "--", "grep", "^CapBnd:", "/proc/self/status")
		if r.code == 0 || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(r.stdout, defaultSet) {
		t.Fatalf("a command entered into an app added without capability isolators has %q, want bounding set %s", r, defaultSet)
	}
	// The app itself (its namespace's pid 1 is the stage1's helper).
	r = e.ok("app", "exec", uuid, "--app=plain", "--", "/bin/sh", "-c",
		`for p in /proc/[0-9]*; do grep -q "^Name:.sleep" $p/status 2>/dev/null && grep ^CapBnd: $p/status; done`)
	if got := strings.TrimSpace(r.stdout); got != "CapBnd:\t"+defaultSet {
		t.Fatalf("the added app's sleep has %q, want bounding set %s", got, defaultSet)
	}
}

// TestMutablePodAppsKeepTheirSeccompFilter: systemd-nspawn runs a
// mutable pod's container without its own seccomp filter (its apps come
// later, as with the bounding set above), so an app added without a
// seccomp isolator must still be held by nscn's default filter, which its
// helper installs, and a command entered into it the same.
func TestMutablePodAppsKeepTheirSeccompFilter(t *testing.T) {
	e := newEnv(t)
	uuid := e.start("--insecure-options=image", "app", "sandbox", "--net=host", stage1Flag(t, nspawn))
	e.ok("--insecure-options=image", "app", "add", uuid, busyboxACI(t), "--name=plain", "--exec=/bin/sleep", "--", "300")
	e.ok("app", "start", uuid, "--app=plain")
	var r result
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r = e.run("app", "exec", uuid, "--app=plain", "--", "grep", "^Seccomp:", "/proc/self/status")
		if r.code == 0 || time.Now().After(deadline) {
			break
		}
	}
	if got := strings.TrimSpace(r.stdout); got != "Seccomp:\t2" {
		t.Fatalf("a command entered into an app added without seccomp isolator has %q, want a filter (Seccomp: 2)", r)
	}
	r = e.ok("app", "exec", uuid, "--app=plain", "--", "/bin/sh", "-c",
		`for p in /proc/[0-9]*; do grep -q "^Name:.sleep" $p/status 2>/dev/null && grep ^Seccomp: $p/status; done`)
	if got := strings.TrimSpace(r.stdout); got != "Seccomp:\t2" {
		t.Fatalf("the added app's sleep has %q, want a filter (Seccomp: 2)", got)
	}
}

// TestMutablePodDefaultFilterHoldsModifyLDT: with no systemd-nspawn filter
// in a mutable pod, modify_ldt (unprivileged LDT code, which nspawn's
// filter blocked) is held back by nscn's default filter, in the app and
// in a command entered into it. The control app asks for no filter
// (a retain-set of every syscall): there the same call reaches the
// kernel, so the failure above is the filter's.
func TestMutablePodDefaultFilterHoldsModifyLDT(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "386" {
		t.Skip("modify_ldt is x86 only")
	}
	e := newEnv(t)
	aci := image{name: "example.com/ldt", app: app("0", "0", "/bin/sleep", "300")}.build(t)
	uuid := e.start("--insecure-options=image", "app", "sandbox", "--net=host", stage1Flag(t, nspawn))
	e.ok("--insecure-options=image", "app", "add", uuid, aci, "--name=plain")
	e.ok("--insecure-options=image", "app", "add", uuid, aci, "--name=open", "--seccomp=mode=retain,@appc.io/all")
	for _, name := range []string{"plain", "open"} {
		e.ok("app", "start", uuid, "--app="+name)
	}
	ldt := func(name string) string {
		var r result
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			r = e.run("app", "exec", uuid, "--app="+name, "--", "/attack", "in", "ldt:")
			if r.code == 0 || time.Now().After(deadline) {
				break
			}
		}
		return strings.TrimSpace(r.stdout)
	}
	if got := ldt("plain"); got != "err ldt:: operation not permitted" {
		t.Errorf("modify_ldt in an app with the default filter: %q, want EPERM", got)
	}
	if got := ldt("open"); got != "ok ldt:" {
		t.Errorf("modify_ldt in an app that asked for no filter: %q, want it to reach the kernel", got)
	}
}
