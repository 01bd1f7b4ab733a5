// Package kvm tells whether KVM can really run a guest on this machine,
// so that qemu is asked for the KVM accelerator only where it works and
// for TCG (software emulation) everywhere else.
//
// Opening /dev/kvm is not enough: where nested virtualization is broken
// (as on some CI machines) /dev/kvm opens and a VM can be created, but the
// guest's vCPU never runs and KVM_RUN does not return, so qemu hangs until
// whoever started it gives up. Probe therefore runs a real guest: it
// creates a VM with one page of memory holding a few bytes of real-mode
// code, one vCPU pointed at it, and runs the vCPU until the code has
// written a computed byte to an I/O port and halted. It does this in a
// child process (a re-exec of the calling binary, dispatched by
// ProbeChild), which it kills when the guest does not finish within a
// short timeout; see Probe for why a child and not a thread.
//
// It runs wherever a qemu or a KVM guest is about to be started: the
// cgroup v2 test VM (internal/testutil/vm) and, later, the kvm stage1. It
// needs read and write access to /dev/kvm (root, or the kvm group), not
// root as such, and it does not start qemu or choose qemu's flags: it
// returns the accelerator and a one-line reason. The KVM API it uses is
// documented in the kernel's Documentation/virt/kvm/api.rst.
package kvm
