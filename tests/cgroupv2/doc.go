// Package cgroupv2 is the end-to-end suite that runs nscn on a pure
// cgroup v2 (unified hierarchy) host: a qemu VM booted by
// internal/testutil/vm, since the test machines' own cgroups are hybrid.
// The tests carry the `vm` build tag and find what they put in the VM
// through environment variables that `make vm-test` sets:
//
//	NSCN_BIN                the nscn binary (stage1-fly.aci and nscn-fetch beside it)
//	NSCN_STAGE1_NSPAWN_ACI  the stage1-nspawn image
//	NSCN_IMAGES             the test images (busybox.aci)
//	NSCN_VM_KERNEL          the kernel directory of scripts/vm/fetch-kernel.sh
//	NSCN_VM_INIT            the VM's init, scripts/vm/init.sh
//	NSCN_VM_CACHE           where the base initramfs and the console logs go
//	NSCN_VM_BUSYBOX         a static busybox (default /bin/busybox)
//
// Documentation/testing-vm.md describes the VM and how to debug it.
package cgroupv2
