// Package idshift makes a pod's files appear owned by the IDs of its user
// namespace (--private-users): an image's file owned by uid 0 must be the
// pod's root, host ID Base, inside the pod. Two ways, probed in this
// order:
//
//   - idmapped mounts (mount_setattr(2), MOUNT_ATTR_IDMAP): a clone of
//     each of the pod's mounts, shifted by a user namespace of the
//     range. The files on disk do not change; the shift holds only in
//     the mount namespace the clones are attached in (stage1-nspawn:
//     systemd-nspawn's own). Whether a filesystem allows it is probed
//     with a detached clone (IDMapSupported), never guessed from the
//     kernel version;
//   - a recursive chown (ChownTree) of the pod's own copies of its root
//     filesystems: every ID below the range's Count is shifted by Base,
//     set-ID bits are restored after the chown cleared them. On an
//     overlay this copies every file up into the pod's upper directory
//     (the shared tree in the store below is never written), which costs
//     the pod's disk space and the time of the copy.
//
// UserNS makes the user namespace an idmapped mount needs by starting a
// child in it that ptrace stops before it runs: it locks the calling
// goroutine to its thread while it traces. IDMapMounts attaches in the
// calling thread's mount namespace: call it on a locked thread that
// unshared its own.
//
// It runs in stage1, on the host, as root (CAP_SYS_ADMIN and CAP_CHOWN in
// the initial user namespace). It is Linux-only.
package idshift
