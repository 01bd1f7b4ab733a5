// Package podroot changes a pod's stage1 rootfs from the host while the
// pod runs: what the app entrypoints (app/add, start, stop, rm) of every
// flavor write, read and remove there (units, FIFOs, the helpers' pod
// config, start and status records).
//
// That tree is the pod's root: its own root processes can write it (the
// pod's systemd and helpers under nspawn, the guest's root through
// virtio-fs under kvm), and so could an app that broke out of its own
// confinement. A symlink planted there must not turn a host-side write
// or removal onto a host file, and a FIFO planted where a record is
// expected must not hang the entrypoint. So every path is resolved in
// the tree (an os.Root: a symlink or ".." may not lead out of it), files
// are created with O_EXCL and O_NOFOLLOW, and a file is read only once it
// is seen to be a regular one.
package podroot
