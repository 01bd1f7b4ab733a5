// Package mountplan prepares the root filesystems of a pod on the host, for
// stage0: each app's rootfs, and the stage1 rootfs itself, is an overlayfs
// mount whose read-only lower layer is the rendered tree in the store
// (shared by every pod that uses the image) and whose upper and work
// directories live in the pod directory, under overlay/ (see
// stage1abi.OverlayDir). Where overlayfs cannot be used (an overlay mount
// fails: no overlay support, no privilege, or a lower filesystem overlayfs
// refuses), the trees are copied instead, with cp -a semantics (CopyTree):
// ApplyOverlayOrCopy tries the overlays and falls back, so a pod start pays
// for no probe; ProbeOverlay asks the question without a pod.
//
// The work is split in three, so that most of it is tested without root:
//
//   - Build computes a Plan from a Config. A plan is plain data: an ordered
//     list of steps (create a directory, mount, copy a tree). It validates
//     everything it can before anything is touched.
//   - Apply executes a plan. Directories and copies are made directly;
//     mounts go through a Mounter, a one-method interface. Kernel mounts
//     with mount(2), Recorder only records (for tests), and Logging logs
//     each mount at debug level before passing it on.
//   - UnmountAll undoes the mounts: it unmounts everything at or below a
//     directory, as listed in /proc/self/mountinfo (ParseMountInfo), deepest
//     first, lazily when a mount is busy. Pod garbage collection calls it
//     before removing a pod directory.
//
// The overlayfs mount options are documented in the kernel tree,
// Documentation/filesystems/overlayfs.rst; the layout of the stage1 and app
// rootfses in the pod directory is the one of the appc stage1 ABI
// (pkg/stage1abi, Documentation/stage1-abi.md).
//
// What the package does not do: it does not render trees (store/tree does),
// does not create or enter namespaces, and does not mount volumes or API
// filesystems into the apps: stage1 does that, in the pod's own mount
// namespace. The mounts made here are in stage0's mount namespace, normally
// the host's, so that they outlive stage0 and stage1 can use them.
//
// The package runs in stage0. Build and the mountinfo parser need no
// privileges and do no I/O; Apply, ApplyOverlayOrCopy, ProbeOverlay and UnmountAll need
// CAP_SYS_ADMIN for the mounts, and CopyTree needs root to preserve
// ownership, device nodes and trusted xattrs. Mounting is Linux-only;
// elsewhere those calls fail with errdefs.ErrNotImplemented.
package mountplan
