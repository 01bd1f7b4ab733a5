// Package testutil holds helpers shared by the in-package tests. It is only
// imported from _test.go files.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI, where a missing host feature is
// a failure rather than a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequiresRoot skips a test that needs root when not running as root, and
// fails it in CI, where everything runs as root.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "test requires root")
	}
}

// RequiresCommand skips (locally) or fails (in CI) when a host command the
// test drives is not installed.
func RequiresCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "test requires "+name+" on PATH (scripts/install-deps.sh installs it)")
	}
	return p
}

func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI=true, not skipping)", reason)
	}
	t.Skip(reason)
}
