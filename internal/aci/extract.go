package aci

import (
	"context"
	"hash"
	"io"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
)

// ExtractOptions tunes ExtractRootfs.
type ExtractOptions struct {
	// PreserveOwnership applies the uid and gid of each entry (and sets
	// xattrs outside the user.* namespace, which only make sense with it).
	// It needs root. When false, everything belongs to the caller.
	PreserveOwnership bool
	// Filter, when set, is asked about every entry with its clean path
	// inside the rootfs, absolute ("/bin/sh"), and the entry is skipped
	// when it returns false. Directories that are skipped but needed as
	// parents of kept entries are created with mode 0755 (less the umask). The rootfs
	// directory itself ("/") is never filtered.
	Filter func(p string) bool
	// Hash, when set, makes extraction compute a digest of every regular
	// file's content from the data it writes (with hashes from Hash, one
	// per goroutine, reset for each file): the tree store needs no second
	// pass over the files.
	Hash func() hash.Hash
	// Content, when set, is called for every regular file extraction
	// writes, once its content and metadata are set. Extraction closes
	// the file when Content returns; Content must not keep its
	// descriptor. Calls may come from several goroutines at once.
	// Extraction writes a file's content only when it creates the file,
	// and Content is called before that file is closed, so an inode seen
	// once keeps that content for the rest of the extraction, and its
	// number is not reused until Content has returned.
	Content func(f WrittenFile)
	// NamesDone, when set, is called once every name of the archive is
	// extracted and every directory has its final mode and times, while
	// the workers may still write the contents and metadata of the last
	// regular files (through descriptors they hold: they create, remove
	// and rename nothing). It is not called when extraction fails before
	// that point. It runs on the goroutine that called ExtractRootfs. The
	// tree store starts the walk of the tree's hash there.
	NamesDone func()
	// Layer makes the archive an OCI image layer
	// (https://github.com/opencontainers/image-spec/blob/main/layer.md)
	// instead of an ACI: names are relative to dest ("bin/sh", "./bin/sh"),
	// whiteouts are applied to what dest held before (".wh.NAME" removes
	// NAME, ".wh..wh..opq" empties its directory of everything that is not
	// from this layer) and never written, and a hard link may point at a
	// file of an earlier layer. Filter is ignored.
	Layer bool
}

// The OCI whiteout names.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// WrittenFile is a regular file ExtractOptions.Content is given.
type WrittenFile struct {
	Path   string // relative to the rootfs: "bin/sh"
	Fd     int    // open for reading and writing
	Digest []byte // of the content, with ExtractOptions.Hash; nil without
}

// ExtractRootfs extracts the entries under "rootfs/" of an uncompressed
// image tar into dest, an existing directory: "rootfs/bin/sh" lands at
// dest/bin/sh. Other entries (the manifest) are skipped. It checks ctx
// between entries and while copying file contents.
//
// No entry ever lands outside dest. A name with a ".." component is
// rejected. Parents are resolved inside dest, so a symlink planted by an
// earlier entry (or an earlier layer) is interpreted as if dest were "/",
// never followed to the host; the last component is never followed at all.
// Symlink targets are data and are written as they are. A hardlink must
// name an earlier entry of the same archive that was kept.
//
// When dest already holds files (rendering dependencies, later layers over
// earlier ones), an entry replaces what is at its path: a file replaces a
// file, a directory entry over a directory only updates its metadata, any
// entry over a symlink replaces the symlink (a symlink to a directory is
// removed, not followed), a non-directory over a directory removes the
// whole directory first, and a directory over a non-directory replaces it.
//
// Modes (with setuid, setgid and sticky bits), times, xattrs (PAX
// SCHILY.xattr records), device nodes, fifos and hardlinks are preserved;
// ownership when opts.PreserveOwnership is set. Directory modes and times
// are applied once the whole archive is extracted, so that read-only
// directories can still be filled and their times are not disturbed by
// their children. Files are written sparsely: runs of zero bytes become
// holes, which keeps a sparse-file bomb from filling the disk.
//
// When tarStream is also an io.ReaderAt and io.Seeker (an *os.File), the
// contents of regular files are written by worker goroutines that read
// them at their offset in the archive (sparse entries excepted); entries
// are still created in archive order on the calling goroutine, and
// ExtractRootfs returns only once every worker is done.
//
// Errors name the entry. A malformed archive or a hostile entry is an
// InvalidArgument error; an operation refused for lack of privilege is a
// PermissionDenied error. On error dest holds the entries extracted so far:
// the caller is expected to extract into a temporary directory and discard
// it.
func ExtractRootfs(ctx context.Context, tarStream io.Reader, dest string, opts ExtractOptions) error {
	return extract(ctx, tarStream, dest, opts, tuning{})
}

// layerRelPath maps the name of an OCI layer member to a clean path
// relative to the root: "./usr//bin/x" and "usr/bin/x" give "usr/bin/x",
// "./" gives ".". A ".." component or a NUL byte is an InvalidArgument
// error.
func layerRelPath(name string) (string, error) {
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return "", errdefs.InvalidArgument("entry name %q has a \"..\" component", name)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", errdefs.InvalidArgument("entry name %q holds a NUL byte", name)
	}
	return cleanArchiveName(name), nil
}

// rootfsRelPath maps an archive member name to a clean path relative to
// the rootfs: "rootfs/usr/bin/x" and "./rootfs/usr//bin/x" give
// "usr/bin/x", "rootfs/" gives ".". inRootfs is false for members outside
// the rootfs (the manifest, or stray files), which extraction skips. A name
// with a ".." component is an InvalidArgument error whatever it would clean
// to: no image builder writes one, and "rootfs/../../x" is an escape
// attempt.
func rootfsRelPath(name string) (rel string, inRootfs bool, err error) {
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return "", false, errdefs.InvalidArgument("entry name %q has a \"..\" component", name)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", false, errdefs.InvalidArgument("entry name %q holds a NUL byte", name)
	}
	n := cleanArchiveName(name)
	switch {
	case n == rootfsName:
		return ".", true, nil
	case strings.HasPrefix(n, rootfsName+"/"):
		return n[len(rootfsName)+1:], true, nil
	default:
		return "", false, nil
	}
}
