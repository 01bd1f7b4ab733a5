//go:build functional && kvm

package tests

import "testing"

// TestAppKvmRefused: stage1-kvm has no app entrypoints yet, so a mutable
// pod on it is refused before it starts, with the reason, and nothing of
// the pod is left.
func TestAppKvmRefused(t *testing.T) {
	e := newEnv(t)
	r := e.fails("cannot change the apps of a running pod", "--insecure-options=image", "app", "sandbox", "--net=host", "--stage1-path="+kvmACI(t))
	if r.code != 254 {
		t.Fatalf("app sandbox on kvm: exit %d, want 254", r.code)
	}
	assertNoPods(t, e)
}
