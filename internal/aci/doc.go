// Package aci reads App Container Images: it sniffs and undoes the archive
// compression, bounds how much a hostile archive may expand, parses and
// validates the image manifest, and extracts the rootfs of an image into a
// directory without ever letting an entry land outside it.
//
// The image format is the appc one
// (https://github.com/appc/spec/blob/v0.8.11/spec/aci.md): a tar holding a
// "manifest" file (a JSON ImageManifest) and a "rootfs" directory, possibly
// compressed with gzip, bzip2 or xz (zstd is accepted too).
//
// Every archive is treated as hostile. ExtractRootfs resolves the parent of
// each entry inside the destination (openat2 with RESOLVE_IN_ROOT, or the
// userspace resolver of filepath-securejoin on kernels without openat2) and
// creates the last component relative to that parent with O_EXCL,
// O_NOFOLLOW and the *at syscalls, so a symlink planted by an earlier entry
// is treated as a link inside the future root filesystem, never followed to
// the host. Extracting into a directory that already holds files gives the
// overwrite rules that rendering image dependencies needs
// (https://github.com/appc/spec/blob/v0.8.11/spec/ace.md#filesystem-setup).
//
// When the archive is a file (an io.ReaderAt and io.Seeker, as the blob
// store's files are), the contents of regular files are written by worker
// goroutines, one per processor, reading them from the file at their
// offset while the tar reader skips them. Only the creation of names stays
// on the extracting goroutine, in archive order: every lookup, removal,
// symlink and hardlink happens exactly as in a serial extraction, and a
// worker touches nothing but the descriptor of a file already created.
//
// Xattrs of symlinks and device nodes are set through the parent
// directory's /proc/self/fd link (there is no fd-based call for them), so
// /proc must be mounted to extract images that carry such xattrs.
//
// What the package does not do: it does not fetch, verify signatures, hash
// images, or decide which images to layer (store/tree does); it does not
// decrypt PGP-encrypted archives. It does not defend against a concurrent
// process rewriting the destination while it is extracted: the destination is
// expected to be a private directory of the caller.
//
// The package runs in stage0 and needs no privileges for most of its work.
// Preserving ownership, creating device nodes and setting xattrs outside
// the user.* namespace need root (CAP_CHOWN, CAP_MKNOD, CAP_SYS_ADMIN or
// CAP_SETFCAP); without them those entries fail with a PermissionDenied
// error. Extraction is Linux-only; on other systems it reports
// NotImplemented.
package aci
