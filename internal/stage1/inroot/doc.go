// Package inroot resolves, opens and creates paths inside an untrusted root
// directory, such as an app's rootfs, with openat2(2) and RESOLVE_IN_ROOT:
// every symlink and ".." in the tree is resolved as if the directory were
// "/", so no path can lead outside it. It also opens host paths that must
// not contain symlinks at all (appc host volume sources).
//
// Handles returned for mount targets are O_PATH descriptors; callers mount
// on them through /proc/self/fd/N, so the path is resolved exactly once.
//
// It runs in stage1, on Linux 5.6 or newer (openat2). It needs no
// privileges of its own; creating files needs write access to the tree.
package inroot
