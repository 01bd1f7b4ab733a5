package entrypoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/kvm"
)

func TestVerdictFileFollowsTheKernel(t *testing.T) {
	k := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(k, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := verdictFile(k)
	if !strings.HasPrefix(a, verdictDir+"/accel-") || a != verdictFile(k) {
		t.Fatalf("verdictFile = %q, not stable under %s", a, verdictDir)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(k, later, later); err != nil {
		t.Fatal(err)
	}
	if verdictFile(k) == a {
		t.Fatal("a kernel changed since is not checked again")
	}
}

func TestAcceleratorFromTheEnvironment(t *testing.T) {
	for _, a := range []kvm.Accel{kvm.AccelKVM, kvm.AccelTCG} {
		t.Setenv("NSCN_VM_ACCEL", string(a))
		if v := accelerator(t.Context(), image{Kernel: "/nonexistent"}); v.Accel != a || !strings.Contains(v.Reason, "NSCN_VM_ACCEL") {
			t.Errorf("NSCN_VM_ACCEL=%s: %+v", a, v)
		}
	}
}
