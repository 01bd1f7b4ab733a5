package aci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
)

const (
	copyBufSize = 256 << 10
	// holeBlock is the granularity at which zero runs become holes; it
	// matches the page and common filesystem block size.
	holeBlock = 4 << 10
	// paxXattrPrefix marks xattrs in PAX records, as GNU tar and
	// archive/tar write them.
	paxXattrPrefix = "SCHILY.xattr."
	// implicitDirMode is the mode of parents created for entries whose own
	// directory entry is missing or filtered out.
	implicitDirMode = 0o755
	// typeGNUVolHeader labels a GNU multi-volume archive; archive/tar has
	// no constant for it.
	typeGNUVolHeader = 'V'
)

var zeroBlock = make([]byte, holeBlock)

// dirMeta is what is applied to a directory after the whole archive is
// extracted.
type dirMeta struct {
	mode         uint32
	atime, mtime unix.Timespec
}

// extractor holds the state of one ExtractRootfs call.
type extractor struct {
	ctx  context.Context
	opts ExtractOptions

	dest string   // for messages and for the root's own metadata
	root *os.File // dest, opened O_DIRECTORY: the anchor of every lookup

	// noOpenat2 is set once openat2 turns out to be missing (kernel before
	// 5.6, or a seccomp filter); lookups then use filepath-securejoin.
	noOpenat2 bool

	// parentRel and parent are the parent directory of the last entry,
	// kept open for the next entries in the same directory (archives list
	// a directory's files together), which saves a lookup and a close per
	// entry. An entry at parentRel or above it drops it (parentDir), and
	// so does any entry that may have changed the tree's directories: one
	// that is not a regular file, or that replaced something (replaced).
	parentRel string
	parent    *os.File
	replaced  bool

	// seen records every entry name met in the rootfs: true when it was
	// extracted, false when the filter skipped it. Hardlinks may only point
	// at names recorded true.
	seen map[string]bool

	// dirs holds the deferred mode and times of directory entries, applied
	// in finish; dirOrder keeps their first-seen order for determinism.
	dirs     map[string]dirMeta
	dirOrder []string

	src        *errRecorder // the archive as read by tar, to classify read errors
	buf        []byte
	privileged bool // running as root: permission bits do not stop us
}

// extract is ExtractRootfs. noOpenat2 lets the tests exercise the
// fallback resolver on kernels that have openat2.
func extract(ctx context.Context, r io.Reader, dest string, opts ExtractOptions, noOpenat2 bool) error {
	root, err := os.OpenFile(dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: the caller's destination directory
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errdefs.With(errdefs.ErrNotFound, fmt.Errorf("open extraction directory: %w", err))
		}
		return fmt.Errorf("open extraction directory: %w", err)
	}
	defer func() { _ = root.Close() }()

	x := &extractor{
		ctx:        ctx,
		opts:       opts,
		dest:       dest,
		root:       root,
		seen:       make(map[string]bool),
		dirs:       make(map[string]dirMeta),
		src:        &errRecorder{r: r},
		buf:        make([]byte, copyBufSize),
		privileged: os.Geteuid() == 0,
		noOpenat2:  noOpenat2,
	}
	defer x.dropParent()
	tr := tar.NewReader(x.src)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("extract rootfs into %s: %w", dest, err)
		}
		hdr, err := nextHeader(tr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return classifyTarError("extract rootfs: read next entry", x.src, err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("extract rootfs entry %q: %w", hdr.Name, err)
		}
	}
	if err := x.finish(); err != nil {
		return fmt.Errorf("extract rootfs into %s: %w", dest, err)
	}
	return nil
}

// entry extracts one archive member.
func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, typeGNUVolHeader:
		// Metadata about the archive, not members.
		return nil
	}
	rel, ok, err := rootfsRelPath(hdr.Name)
	if err != nil || !ok {
		return err
	}
	if x.opts.PreserveOwnership {
		if err := checkID("uid", hdr.Uid); err != nil {
			return err
		}
		if err := checkID("gid", hdr.Gid); err != nil {
			return err
		}
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errdefs.InvalidArgument("rootfs is not a directory (type %q)", hdr.Typeflag)
		}
		return x.rootDir(hdr)
	}
	if x.opts.Filter != nil && !x.opts.Filter("/"+rel) {
		x.seen[rel] = false
		return nil
	}

	parent, err := x.parentDir(rel)
	if err != nil {
		return fmt.Errorf("open parent directory: %w", err)
	}
	pfd, base := int(parent.Fd()), path.Base(rel)
	x.replaced = false
	defer func() {
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
			if !x.replaced {
				return
			}
		}
		x.dropParent()
	}()

	if hdr.Typeflag != tar.TypeDir {
		// Whatever directory was recorded at this path is being replaced.
		delete(x.dirs, rel)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = x.mkdir(pfd, base, rel, hdr)
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		// archive/tar reports old-style regular files ('\x00') as TypeReg.
		// TypeCont ("contiguous file") is a regular file everywhere but on
		// one long-gone Unix; archive/tar has already expanded sparse files.
		err = x.writeFile(pfd, base, rel, hdr, r)
	case tar.TypeSymlink:
		err = x.symlink(pfd, base, rel, hdr)
	case tar.TypeLink:
		err = x.hardlink(pfd, base, rel, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = x.mknod(pfd, base, rel, hdr)
	default:
		err = errdefs.InvalidArgument("unsupported entry type %q", hdr.Typeflag)
	}
	if err != nil {
		return err
	}
	x.seen[rel] = true
	return nil
}

func checkID(what string, id int) error {
	// -1 would mean "leave unchanged" to chown, and 2^32-1 is the same
	// value as a uid_t: both are invalid in an image.
	if id < 0 || id >= math.MaxUint32 {
		return errdefs.InvalidArgument("%s %d out of range", what, id)
	}
	return nil
}

// parentDir returns the parent directory of the entry rel, resolved and
// created as openDir does, from the cache when the previous entry had the
// same parent. The entry at rel may replace what is there, so a cached
// directory at rel or below it is dropped first: the names under rel are
// resolved afresh.
func (x *extractor) parentDir(rel string) (*os.File, error) {
	if x.parent != nil && (x.parentRel == rel || strings.HasPrefix(x.parentRel, rel+"/")) {
		x.dropParent()
	}
	dir := path.Dir(rel)
	if x.parent != nil && x.parentRel == dir {
		return x.parent, nil
	}
	x.dropParent()
	f, err := x.openDir(dir, true)
	if err != nil {
		return nil, err
	}
	x.parentRel, x.parent = dir, f
	return f, nil
}

func (x *extractor) dropParent() {
	if x.parent != nil {
		_ = x.parent.Close()
		x.parent, x.parentRel = nil, ""
	}
}

// openDir returns a handle on the directory rel (relative to dest, "." for
// dest itself), resolved inside dest: symlinks on the way are followed as
// if dest were the root directory, and ".." cannot climb above it. With
// create, missing directories are made with implicitDirMode.
func (x *extractor) openDir(rel string, create bool) (*os.File, error) {
	if !x.noOpenat2 {
		how := &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		}
		var (
			fd  int
			err error
		)
		// EAGAIN means a concurrent rename raced with the lookup; EINTR a
		// signal. Both are worth a few retries.
		for range 16 {
			fd, err = unix.Openat2(int(x.root.Fd()), rel, how)
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
				break
			}
		}
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), rel), nil
		case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
			// No openat2 here (EPERM is what container seccomp profiles
			// answer for unknown syscalls). The securejoin resolver below
			// has the same semantics.
			x.noOpenat2 = true
		case errors.Is(err, unix.ENOENT) && create:
			// Fall through to the creating resolver.
		default:
			return nil, classifyLookup(sysErr("openat2", rel, err))
		}
	}
	if create {
		// MkdirAllHandle resolves in root like openat2 above, then creates
		// what is missing one component at a time without following
		// anything it did not resolve in root.
		f, err := pathrs.MkdirAllHandle(x.root, rel, implicitDirMode)
		if err != nil {
			return nil, classifyLookup(classifyErrno(err))
		}
		return f, nil
	}
	f, err := pathrs.OpenatInRoot(x.root, rel)
	if err != nil {
		return nil, classifyLookup(classifyErrno(err))
	}
	return f, nil
}

// rootDir applies the metadata of the "rootfs/" entry to dest itself.
func (x *extractor) rootDir(hdr *tar.Header) error {
	fd := int(x.root.Fd())
	if x.opts.PreserveOwnership {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return sysErr("fchown", ".", err)
		}
	}
	if err := x.setXattrs(hdr, "", func(name string, val []byte) error {
		return unix.Fsetxattr(fd, name, val, 0)
	}); err != nil {
		return err
	}
	x.deferDir(".", hdr)
	return nil
}

func (x *extractor) deferDir(rel string, hdr *tar.Header) {
	if _, ok := x.dirs[rel]; !ok {
		x.dirOrder = append(x.dirOrder, rel)
	}
	atime, mtime := entryTimes(hdr)
	x.dirs[rel] = dirMeta{mode: entryPerm(hdr), atime: atime, mtime: mtime}
}

func (x *extractor) mkdir(pfd int, base, rel string, hdr *tar.Header) error {
	st, exists, err := lstatAt(pfd, base)
	if err != nil {
		return sysErr("fstatat", rel, err)
	}
	if exists && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		// A directory over a non-directory (a symlink to a directory
		// included) replaces it.
		if err := removeAt(pfd, base); err != nil {
			return fmt.Errorf("replace %s with a directory: %w", rel, err)
		}
		exists = false
	}
	if !exists {
		// Owner-only until finish applies the real mode, so a read-only
		// directory can still be filled by a non-root caller.
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return sysErr("mkdirat", rel, err)
		}
	} else if !x.privileged && st.Mode&0o700 != 0o700 {
		if err := unix.Fchmodat(pfd, base, (st.Mode&0o7777)|0o700, 0); err != nil {
			return sysErr("fchmodat", rel, err)
		}
	}
	if x.opts.PreserveOwnership {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return sysErr("fchownat", rel, err)
		}
	}
	if err := x.setXattrsAt(hdr, pfd, base, true); err != nil {
		return err
	}
	x.deferDir(rel, hdr)
	return nil
}

func (x *extractor) writeFile(pfd int, base, rel string, hdr *tar.Header, r io.Reader) (err error) {
	// O_EXCL|O_NOFOLLOW: whatever is at the name (from an earlier layer,
	// or an attack) is never written through. If something is there, it
	// is removed and the create tried once more; anything found then is a
	// race, and an error. Read-write only so that opts.Content can read
	// the file back.
	const flags = unix.O_RDWR | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(pfd, base, flags, 0o600)
	if errors.Is(err, unix.EEXIST) {
		x.replaced = true
		if err := removeAt(pfd, base); err != nil {
			return fmt.Errorf("replace %s: %w", rel, err)
		}
		fd, err = unix.Openat(pfd, base, flags, 0o600)
	}
	if err != nil {
		return sysErr("openat", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer func() {
		if f == nil {
			return // handed to opts.Content
		}
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", rel, cerr)
		}
	}()
	if err := x.copySparse(f, r); err != nil {
		return err
	}
	if x.opts.PreserveOwnership {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return sysErr("fchown", rel, err)
		}
	}
	// After chown, which clears the setuid and setgid bits.
	if err := unix.Fchmod(fd, entryPerm(hdr)); err != nil {
		return sysErr("fchmod", rel, err)
	}
	if err := x.setXattrs(hdr, rel, func(name string, val []byte) error {
		return unix.Fsetxattr(fd, name, val, 0)
	}); err != nil {
		return err
	}
	if err := x.setTimes(pfd, base, rel, hdr); err != nil {
		return err
	}
	if x.opts.Content != nil {
		x.opts.Content(f)
		f = nil
	}
	return nil
}

// copySparse copies the entry's content into f, seeking over zero blocks
// instead of writing them, and sets the final size.
func (x *extractor) copySparse(f *os.File, r io.Reader) error {
	var off int64
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		n, rerr := fill(r, x.buf)
		chunk := x.buf[:n]
		for len(chunk) > 0 {
			// Gather a run of data blocks and write it in one call.
			end := 0
			for end < len(chunk) {
				blk := chunk[end:min(end+holeBlock, len(chunk))]
				if bytes.Equal(blk, zeroBlock[:len(blk)]) {
					break
				}
				end += len(blk)
			}
			if end > 0 {
				if _, err := f.WriteAt(chunk[:end], off); err != nil {
					return fmt.Errorf("write content: %w", err)
				}
				off += int64(end)
				chunk = chunk[end:]
				continue
			}
			blk := min(holeBlock, len(chunk))
			off += int64(blk)
			chunk = chunk[blk:]
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return classifyTarError("read content", x.src, rerr)
		}
	}
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("set size: %w", err)
	}
	return nil
}

func (x *extractor) symlink(pfd int, base, rel string, hdr *tar.Header) error {
	if hdr.Linkname == "" {
		return errdefs.InvalidArgument("symlink with an empty target")
	}
	if err := removeAt(pfd, base); err != nil {
		return fmt.Errorf("replace %s: %w", rel, err)
	}
	// The target is data: it is only ever interpreted inside the pod's
	// root, where an absolute or ../ target is harmless.
	if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
		return sysErr("symlinkat", rel, err)
	}
	if x.opts.PreserveOwnership {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return sysErr("fchownat", rel, err)
		}
	}
	if err := x.setXattrsAt(hdr, pfd, base, false); err != nil {
		return err
	}
	return x.setTimes(pfd, base, rel, hdr)
}

func (x *extractor) hardlink(pfd int, base, rel string, hdr *tar.Header) error {
	trel, ok, err := rootfsRelPath(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	if !ok || trel == "." {
		return errdefs.InvalidArgument("hardlink target %q is not inside the rootfs", hdr.Linkname)
	}
	if trel == rel {
		return nil // a link to itself: nothing to do
	}
	kept, seen := x.seen[trel]
	switch {
	case !seen:
		return errdefs.InvalidArgument("hardlink target %q is not an earlier entry of the image", hdr.Linkname)
	case !kept:
		return errdefs.InvalidArgument("hardlink target %q was filtered out (a path whitelist must list both names of a hardlink)", hdr.Linkname)
	}
	// The target is looked up in root like any path, so a symlink planted
	// since cannot redirect it to the host; linkat without
	// AT_SYMLINK_FOLLOW never follows its last component.
	tparent, err := x.openDir(path.Dir(trel), false)
	if err != nil {
		return fmt.Errorf("open hardlink target directory: %w", err)
	}
	defer func() { _ = tparent.Close() }()
	tfd, tbase := int(tparent.Fd()), path.Base(trel)
	st, exists, err := lstatAt(tfd, tbase)
	if err != nil {
		return sysErr("fstatat", trel, err)
	}
	if !exists {
		return errdefs.InvalidArgument("hardlink target %q no longer exists", hdr.Linkname)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return errdefs.InvalidArgument("hardlink target %q is a directory", hdr.Linkname)
	}
	if cur, exists, err := lstatAt(pfd, base); err == nil && exists && cur.Dev == st.Dev && cur.Ino == st.Ino {
		return nil // already the same file
	}
	if err := removeAt(pfd, base); err != nil {
		return fmt.Errorf("replace %s: %w", rel, err)
	}
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return sysErr("linkat", rel, err)
	}
	// The metadata belongs to the inode, already set from the target.
	return nil
}

func (x *extractor) mknod(pfd int, base, rel string, hdr *tar.Header) error {
	var (
		kind uint32
		dev  uint64
	)
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		kind = unix.S_IFCHR
		if hdr.Typeflag == tar.TypeBlock {
			kind = unix.S_IFBLK
		}
		if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
			return errdefs.InvalidArgument("device number %d,%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		dev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	default:
		kind = unix.S_IFIFO
	}
	if err := removeAt(pfd, base); err != nil {
		return fmt.Errorf("replace %s: %w", rel, err)
	}
	if err := unix.Mknodat(pfd, base, kind|0o600, int(dev)); err != nil {
		return sysErr("mknodat", rel, err)
	}
	if x.opts.PreserveOwnership {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return sysErr("fchownat", rel, err)
		}
	}
	// fchmodat follows a symlink in the last component, but base is the
	// node mknodat just created in a directory only we write to.
	if err := unix.Fchmodat(pfd, base, entryPerm(hdr), 0); err != nil {
		return sysErr("fchmodat", rel, err)
	}
	if err := x.setXattrsAt(hdr, pfd, base, false); err != nil {
		return err
	}
	return x.setTimes(pfd, base, rel, hdr)
}

// finish applies the deferred modes and times of directories. A directory
// replaced by a later entry is skipped.
func (x *extractor) finish() error {
	for _, rel := range x.dirOrder {
		m, ok := x.dirs[rel]
		if !ok {
			continue
		}
		if rel == "." {
			if err := unix.Fchmod(int(x.root.Fd()), m.mode); err != nil {
				return sysErr("fchmod", ".", err)
			}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, x.dest, []unix.Timespec{m.atime, m.mtime}, 0); err != nil {
				return sysErr("utimensat", ".", err)
			}
			continue
		}
		parent, err := x.openDir(path.Dir(rel), false)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("set metadata of directory %s: %w", rel, err)
		}
		err = x.finishDir(int(parent.Fd()), path.Base(rel), rel, m)
		_ = parent.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) finishDir(pfd int, base, rel string, m dirMeta) error {
	st, exists, err := lstatAt(pfd, base)
	if err != nil {
		return sysErr("fstatat", rel, err)
	}
	if !exists || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	if err := unix.Fchmodat(pfd, base, m.mode, 0); err != nil {
		return sysErr("fchmodat", rel, err)
	}
	if err := unix.UtimesNanoAt(pfd, base, []unix.Timespec{m.atime, m.mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return sysErr("utimensat", rel, err)
	}
	return nil
}

func (x *extractor) setTimes(pfd int, base, rel string, hdr *tar.Header) error {
	atime, mtime := entryTimes(hdr)
	if err := unix.UtimesNanoAt(pfd, base, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return sysErr("utimensat", rel, err)
	}
	return nil
}

// setXattrsAt sets the entry's xattrs on pfd/base without following it.
// There is no fd-based call for a symlink or a device node, so the name
// goes through the parent's /proc/self/fd link, which pins the directory
// already resolved in root; lsetxattr does not follow base. The user.*
// namespace is only allowed on files and directories (userOK).
func (x *extractor) setXattrsAt(hdr *tar.Header, pfd int, base string, userOK bool) error {
	p := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
	return x.setXattrs(hdr, base, func(name string, val []byte) error {
		if strings.HasPrefix(name, "user.") && !userOK {
			return nil
		}
		return unix.Lsetxattr(p, name, val, 0)
	})
}

// setXattrs sets the xattrs found in the entry's PAX records, in name
// order. Without PreserveOwnership only user.* xattrs are set: the others
// (security.capability, trusted.*) need privileges an unprivileged
// extraction lacks, and are meaningless on files it owns. A filesystem
// without xattr support drops them silently.
func (x *extractor) setXattrs(hdr *tar.Header, rel string, set func(name string, val []byte) error) error {
	var names []string
	for k := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattrPrefix); ok {
			if !x.opts.PreserveOwnership && !strings.HasPrefix(name, "user.") {
				continue
			}
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		err := set(name, []byte(hdr.PAXRecords[paxXattrPrefix+name]))
		if errors.Is(err, unix.ENOTSUP) {
			continue
		}
		if err != nil {
			return sysErr("setxattr "+name, rel, err)
		}
	}
	return nil
}

// entryPerm is the permission part of the entry's mode, with the setuid,
// setgid and sticky bits (tar stores them as the C values, as unix does).
func entryPerm(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 } //nolint:gosec // G115: only the permission bits are kept, which fit

func entryTimes(hdr *tar.Header) (atime, mtime unix.Timespec) {
	mtime = timespec(hdr.ModTime.Unix(), hdr.ModTime.Nanosecond())
	atime = mtime
	if !hdr.AccessTime.IsZero() {
		atime = timespec(hdr.AccessTime.Unix(), hdr.AccessTime.Nanosecond())
	}
	return atime, mtime
}

func timespec(sec int64, nsec int) unix.Timespec {
	return unix.Timespec{Sec: sec, Nsec: int64(nsec)}
}

// lstatAt stats pfd/base without following it. A missing name is not an
// error: exists is false.
func lstatAt(pfd int, base string) (st unix.Stat_t, exists bool, err error) {
	err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	return st, err == nil, err
}

// removeAt removes pfd/base whatever it is, a whole directory tree
// included, never following a symlink: every step is relative to a
// directory fd opened with O_NOFOLLOW. A missing name is not an error.
func removeAt(pfd int, base string) error {
	err := unix.Unlinkat(pfd, base, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return sysErr("unlinkat", base, err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return sysErr("openat", base, err)
	}
	dir := os.NewFile(uintptr(fd), base)
	defer func() { _ = dir.Close() }()
	// A read-only directory (from an earlier layer) would refuse the
	// unlinks below to a non-root caller; it is going away anyway.
	_ = unix.Fchmod(fd, 0o700)
	// List everything before unlinking anything: removing entries while
	// reading a directory may make some filesystems skip names.
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list %s: %w", base, err)
	}
	for _, n := range names {
		if err := removeAt(fd, n); err != nil {
			return err
		}
	}
	if err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return sysErr("rmdir", base, err)
	}
	return nil
}

// sysErr wraps a failed syscall on name, marking a refusal for lack of
// privilege as PermissionDenied.
func sysErr(op, name string, err error) error {
	return classifyErrno(&os.PathError{Op: op, Path: name, Err: err})
}

// classifyLookup marks the lookup failures that only a broken or hostile
// image causes as InvalidArgument: a parent that is a file, a symlink loop,
// or a symlink to a directory that does not exist (the creating lookup
// refuses to make directories at the far end of a dangling symlink).
func classifyLookup(err error) error {
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) {
		return errdefs.With(errdefs.ErrInvalidArgument, err)
	}
	return err
}

func classifyErrno(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return errdefs.With(errdefs.ErrPermissionDenied, err)
	}
	return err
}
