//go:build !linux

package kvm

import "context"

// ProbeChild does nothing: there is no KVM outside Linux.
func ProbeChild() bool { return false }

// Probe returns AccelTCG: there is no KVM outside Linux.
func Probe(context.Context) Verdict { return tcg("KVM exists only on Linux") }
