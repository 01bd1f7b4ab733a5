package kvm

import (
	"fmt"
	"strings"
	"time"
)

// Accel is a qemu accelerator, as qemu's -accel flag names it.
type Accel string

const (
	// AccelKVM is hardware virtualization through /dev/kvm.
	AccelKVM Accel = "kvm"
	// AccelTCG is qemu's software emulation (Tiny Code Generator):
	// several times slower, but it runs anywhere.
	AccelTCG Accel = "tcg"
)

// Timeout bounds one Probe, the child's start included: the guest itself
// runs in microseconds, so a probe that takes longer has met a KVM that
// does not run guests.
const Timeout = 2 * time.Second

// Verdict is what Probe found.
type Verdict struct {
	// Accel is AccelKVM when the test guest ran, else AccelTCG.
	Accel Accel `json:"accel"`
	// Reason is one line: what ran, or what failed and where.
	Reason string `json:"reason"`
}

func (v Verdict) String() string { return string(v.Accel) + ": " + v.Reason }

func tcg(format string, args ...any) Verdict {
	return Verdict{Accel: AccelTCG, Reason: oneLine(fmt.Sprintf(format, args...))}
}

// oneLine joins lines (a child's stderr, say) so that a Reason stays one
// line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
