// Package tree renders images into root filesystems and keeps them as a
// cache that pods reuse.
//
// Rendering follows the appc filesystem setup
// (https://github.com/appc/spec/blob/v0.8.11/spec/ace.md#filesystem-setup):
// the dependencies of an image are resolved depth-first, in manifest order,
// and their rootfs are extracted into an empty directory one after the
// other, the image's own rootfs last, each layer overwriting the earlier
// ones. The pathWhitelist of an image restricts what survives of the image
// and of everything it depends on, so a file from a deep dependency is kept
// only when the whitelist of every image on its path from the top image
// admits it (Plan computes this per layer). A whitelist admits the paths it
// lists and their parent directories; it does not admit the contents of a
// listed directory.
//
// Each tree lives in <dir>/<key>/: "rootfs/", the top image's "manifest",
// "tree.json" (the image IDs in render order, the content hash, the render
// time), "lastused" (its mtime is the last use) and the completion marker
// "complete", written last. The key names the ordered list of image IDs, so
// the same image with the same resolved dependencies reuses its tree.
//
// A tree is rendered in <dir>/.tmp-<key>-*, synced, completed and renamed
// into place, so a crash leaves either a complete tree or debris that Clean
// removes; a tree directory without its marker is never returned. Several
// processes may render the same image at once: a flock on <dir>/<key>.lock
// lets one render while the others wait and reuse the result. Tree
// directories are mode 0700: their setuid binaries must not be reachable by
// unprivileged users of the host.
//
// The package does not fetch or store images (it reads them through a
// Source), does not mount anything (overlay and bind mounts of a tree are
// the business of internal/mountplan), and does not decide when a tree is
// unused (store.GC does, using LastUsed).
//
// It runs in stage0. Rendering with the images' owners, device nodes and
// privileged xattrs needs root; without root, trees are rendered owned by
// the caller (WithPreserveOwnership(false), the default for non-root).
package tree
