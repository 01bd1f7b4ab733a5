// Package vm boots a small qemu virtual machine that is a pure cgroup v2
// (unified hierarchy) host, runs shell scripts in it as root, and returns
// their output and exit statuses. The end-to-end tests in tests/vm use it
// to run nscn where the host's own cgroups cannot (a hybrid or v1 host),
// and Documentation/testing-vm.md describes the whole setup.
//
// The VM is a Debian cloud kernel (fetched by scripts/vm/fetch-kernel.sh)
// and an initramfs that this package writes itself (no cpio tool, no
// root): busybox (static), the /init of scripts/vm/init.sh, the kernel
// modules, and whatever files the caller adds (nscn, the stage1 images,
// test images). That base archive is cached by the hash of its content;
// each boot appends a second small archive with the scripts under /test.
// The VM has no network device and shares nothing with the host; its
// console is the first serial port, read through qemu's stdout.
//
// qemu uses KVM only where kvm.Probe has run a test guest under it, and
// TCG (software emulation, several times slower) everywhere else: without
// /dev/kvm, and where /dev/kvm opens but guests never run (broken nested
// virtualization), where qemu with KVM would hang until the timeout. The
// probe re-executes the test binary, so a test binary that boots VMs
// calls kvm.ProbeChild first in its TestMain.
//
// qemu runs in a process group of its own with Pdeathsig SIGKILL: when a
// boot's context ends, the group is killed and Boot waits for qemu, and
// when the test binary dies, qemu dies with it.
//
// It runs on the host, needs qemu-system-x86_64 but not root, and is only
// imported from tests.
package vm
