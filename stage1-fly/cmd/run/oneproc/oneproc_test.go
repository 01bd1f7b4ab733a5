package oneproc

import (
	"runtime"
	"testing"
)

// The test binary links this package, so its initialisation ran before
// the test: one P from then on, whatever the machine has.
func TestOneP(t *testing.T) {
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS after the package's initialisation = %d, want 1", got)
	}
	if Previous() < 1 {
		t.Fatalf("Previous() = %d, want the runtime's own choice, at least 1", Previous())
	}
}
