package aci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

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

	// dirCache holds the directories entries were extracted into, open,
	// by their path relative to dest, to save a lookup per entry: the
	// files of a directory are rarely listed together (the image builder
	// may list every directory first, then the files in any order). A
	// path's resolution only changes when something on it is removed or
	// replaced (creating a name changes nothing already resolved), so the
	// whole cache is dropped after any entry that removed something
	// (replaced), which takes care of directories reached through
	// symlinks as well. dirCacheMax bounds the descriptors it holds: at
	// first what keeps the process's descriptor table small, then, once
	// growTable has grown the table beside the extraction, dirCacheFull.
	dirCache     map[string]cachedDir
	dirCacheMax  atomic.Int64
	dirCacheFull int
	lowestFd     int  // the lowest descriptor free when extraction started
	growing      bool // growTable started
	replaced     bool
	// dirAttrs keeps what the cache knew of a directory it had to close
	// to make room, to spare the next lookup of it the system calls that
	// tell (dropped with the cache).
	dirAttrs map[string]cachedDir

	// euid and egid own the files extraction creates, unless the parent
	// directory is setgid; a file whose entry names them needs no chown.
	euid, egid int
	// umask is the process's, when known: a file whose mode it leaves
	// alone is created with its mode and needs no chmod.
	umask      uint32
	umaskKnown bool

	// seen records every entry name met in the rootfs: true when it was
	// extracted, false when the filter skipped it. Hardlinks may only point
	// at names recorded true.
	seen map[string]bool
	// layerDirs holds the directories above the entries of an OCI layer
	// (ExtractOptions.Layer), which whiteouts must not remove.
	layerDirs map[string]bool

	// dirs holds the deferred mode and times of directory entries, applied
	// in finish; dirOrder keeps their first-seen order for determinism.
	dirs     map[string]dirMeta
	dirOrder []string

	src        *errRecorder // the archive as read by tar, to classify read errors
	buf        []byte
	hash       hash.Hash // of the contents written inline; nil without opts.Hash
	privileged bool      // running as root: permission bits do not stop us

	// files, when the archive is a file (posReader), is where writeFile
	// hands each regular file it created, to have its content and
	// metadata written by fileWorkers while the next entries are
	// extracted. Nil: contents are written inline.
	files chan fileJob
	pos   *posReader
	work  sync.WaitGroup
	// workErr is the first error of a worker; extraction stops at it.
	workErr atomic.Pointer[error]
}

// tuning holds what the tests switch to exercise the other code paths.
type tuning struct {
	// noOpenat2 uses the fallback resolver on kernels that have openat2.
	noOpenat2 bool
	// serial writes every file's content inline, as for an archive that is
	// not a file.
	serial bool
	// dirCache, when set, is the directory cache's size at the start;
	// noGrow keeps it there.
	dirCache int
	noGrow   bool
}

// readAtSeeker is an archive ExtractRootfs can read in parallel: an
// *os.File (the blob store's) or a *bytes.Reader.
type readAtSeeker interface {
	io.ReaderAt
	io.Seeker
}

// extract is ExtractRootfs.
func extract(ctx context.Context, r io.Reader, dest string, opts ExtractOptions, tune tuning) (err error) {
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
		layerDirs:  make(map[string]bool),
		dirCache:   make(map[string]cachedDir),
		dirAttrs:   make(map[string]cachedDir),
		dirs:       make(map[string]dirMeta),
		src:        &errRecorder{r: r},
		privileged: os.Geteuid() == 0,
		euid:       os.Geteuid(),
		egid:       os.Getegid(),
		noOpenat2:  tune.noOpenat2,
	}
	x.lowestFd = int(root.Fd())
	x.dirCacheFull = dirCacheSize()
	x.dirCacheMax.Store(int64(min(x.dirCacheFull, smallTableCache(x.lowestFd))))
	if tune.dirCache > 0 {
		x.dirCacheMax.Store(int64(tune.dirCache))
	}
	if tune.noGrow {
		x.dirCacheFull = int(x.dirCacheMax.Load())
	}
	if opts.Hash != nil {
		x.hash = opts.Hash()
	}
	x.umask, x.umaskKnown = processUmask()
	defer x.dropDirs()
	var tarSrc io.Reader = x.src
	if ra, ok := r.(readAtSeeker); ok && !tune.serial {
		if start, serr := ra.Seek(0, io.SeekCurrent); serr == nil {
			x.pos = newPosReader(ra, start, posBufSize)
			if m, unmap := mapArchive(ra); m != nil {
				// The tar reader reads the headers from the mapping: no
				// copy of the contents between them, which the workers
				// read themselves. A fault there (the file truncated
				// meanwhile) is an error of Read, not a crash.
				x.pos.mapped = m
				defer unmap()
				defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			}
			x.src = &errRecorder{r: x.pos}
			tarSrc = seekRecorder{errRecorder: x.src, s: x.pos}
			x.startWorkers(ra)
			// Every return waits for the workers: nothing is written
			// into dest once extract has returned.
			defer func() {
				if err != nil {
					x.fail(err) // the queued files are not worth writing
				}
				if werr := x.stopWorkers(); werr != nil && err == nil {
					err = werr
				}
			}()
		}
	}
	tr := tar.NewReader(tarSrc)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("extract rootfs into %s: %w", dest, err)
		}
		if err := x.workerErr(); err != nil {
			return err
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
	// The directories' modes and times while the workers write the last
	// files: they write through descriptors they hold, and add no names.
	if err := x.finish(); err != nil {
		return fmt.Errorf("extract rootfs into %s: %w", dest, err)
	}
	if opts.NamesDone != nil {
		// Extraction needs its directories no more, and whoever
		// NamesDone starts gets their descriptors' room below
		// smallTable.
		x.dropDirs()
		opts.NamesDone()
	}
	return x.stopWorkers()
}

// entry extracts one archive member.
func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, typeGNUVolHeader:
		// Metadata about the archive, not members.
		return nil
	}
	rel, ok, err := x.relPath(hdr.Name)
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
	if x.opts.Layer && strings.HasPrefix(path.Base(rel), whiteoutPrefix) {
		return x.whiteout(rel)
	}
	if !x.opts.Layer && x.opts.Filter != nil && !x.opts.Filter("/"+rel) {
		x.seen[rel] = false
		return nil
	}

	parent, err := x.dir(path.Dir(rel), true)
	if err != nil {
		return fmt.Errorf("open parent directory: %w", err)
	}
	pfd, base := int(parent.f.Fd()), path.Base(rel)
	x.replaced = false
	defer func() {
		if x.replaced {
			x.dropDirs()
		}
	}()

	if hdr.Typeflag != tar.TypeDir {
		// Whatever directory was recorded at this path is being replaced.
		delete(x.dirs, rel)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = x.mkdir(parent, base, rel, hdr)
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		// archive/tar reports old-style regular files ('\x00') as TypeReg.
		// TypeCont ("contiguous file") is a regular file everywhere but on
		// one long-gone Unix; archive/tar has already expanded sparse files.
		err = x.writeFile(parent, base, rel, hdr, r)
	case tar.TypeSymlink:
		err = x.symlink(parent, base, rel, hdr)
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
	if x.opts.Layer {
		for d := path.Dir(rel); d != "." && !x.layerDirs[d]; d = path.Dir(d) {
			x.layerDirs[d] = true
		}
	}
	return nil
}

// relPath maps a member name to its path relative to dest; ok is false for
// members that are not extracted (an ACI's manifest).
func (x *extractor) relPath(name string) (rel string, ok bool, err error) {
	if x.opts.Layer {
		rel, err := layerRelPath(name)
		return rel, err == nil, err
	}
	return rootfsRelPath(name)
}

// fromThisLayer reports whether rel was extracted by this archive, or is
// a directory above something that was: whiteouts hide only what earlier
// layers put there.
func (x *extractor) fromThisLayer(rel string) bool {
	return x.seen[rel] || x.layerDirs[rel]
}

// whiteout applies an OCI whiteout entry rel (".wh.NAME" or the opaque
// marker ".wh..wh..opq" of its directory). Nothing is created for it.
// What it names is looked up inside dest like any entry; a name that
// does not exist (hidden already, or never there) is not an error.
func (x *extractor) whiteout(rel string) error {
	dir, base := path.Dir(rel), path.Base(rel)
	if base == whiteoutOpaque {
		return x.opaque(dir)
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return errdefs.InvalidArgument("whiteout %q names no file", rel)
	}
	target := path.Join(dir, victim)
	if x.fromThisLayer(target) {
		return nil
	}
	parent, err := x.openDir(dir, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open whiteout's directory: %w", err)
	}
	defer func() { _ = parent.Close() }()
	if err := x.removeAt(int(parent.Fd()), victim); err != nil {
		return fmt.Errorf("apply whiteout: %w", err)
	}
	x.dropDirs()
	return nil
}

// opaque removes from the directory rel everything earlier layers put
// there, keeping this layer's entries (and, inside this layer's
// directories, removing the earlier layers' entries in turn).
func (x *extractor) opaque(rel string) error {
	d, err := x.openDir(rel, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open opaque directory: %w", err)
	}
	defer func() { _ = d.Close() }()
	// An O_PATH handle cannot be listed; reopen it for reading, without
	// following anything (it is the directory just resolved in root).
	fd, err := unix.Openat(int(d.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return sysErr("openat", rel, err)
	}
	dir := os.NewFile(uintptr(fd), rel)
	defer func() { _ = dir.Close() }()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list %s: %w", rel, err)
	}
	sort.Strings(names)
	for _, n := range names {
		child := path.Join(rel, n)
		if !x.fromThisLayer(child) {
			if err := x.removeAt(fd, n); err != nil {
				return fmt.Errorf("apply opaque whiteout of %s: %w", rel, err)
			}
			continue
		}
		st, exists, err := lstatAt(fd, n)
		if err != nil {
			return sysErr("fstatat", child, err)
		}
		if exists && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := x.opaque(child); err != nil {
				return err
			}
		}
	}
	x.dropDirs()
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

// cachedDir is a directory of the cache.
type cachedDir struct {
	f *os.File
	// setgid: files created in it take its group, not the creator's. Only
	// known with PreserveOwnership, the only case that needs it.
	setgid bool
	// umaskRules: files created in it get the mode asked for less the
	// umask. Not so with a default ACL, which replaces the umask (and
	// when it cannot be told).
	umaskRules bool
}

// dir returns the directory rel, from the cache or resolved (and with
// create, created) by openDir and then cached. The caller must not close
// it.
func (x *extractor) dir(rel string, create bool) (cachedDir, error) {
	if d, ok := x.dirCache[rel]; ok {
		return d, nil
	}
	f, err := x.openDir(rel, create)
	if err != nil {
		return cachedDir{}, err
	}
	d, known := x.dirAttrs[rel]
	d.f = f
	if !known {
		d.setgid, d.umaskRules = true, x.umaskKnown && !hasDefaultACL(f)
		if x.opts.PreserveOwnership {
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err == nil {
				d.setgid = st.Mode&unix.S_ISGID != 0
			}
		}
	}
	if len(x.dirCache) >= int(x.dirCacheMax.Load()) {
		if !x.growing && len(x.dirCache) < x.dirCacheFull {
			x.growing = true
			go x.growTable()
		}
		for k, old := range x.dirCache { // any one: map order is random
			_ = old.f.Close()
			delete(x.dirCache, k)
			old.f = nil
			x.dirAttrs[k] = old
			break
		}
	}
	x.dirCache[rel] = d
	return d, nil
}

func (x *extractor) dropDirs() {
	for k, d := range x.dirCache {
		_ = d.f.Close()
		delete(x.dirCache, k)
	}
	clear(x.dirAttrs)
}

// hasDefaultACL reports whether the directory dir has a default ACL (or
// whether that cannot be told): files created in it then get their mode
// from it, not from the umask. dir may be an O_PATH descriptor, which the
// f*xattr calls refuse; its /proc/self/fd link is followed instead.
func hasDefaultACL(dir *os.File) bool {
	_, err := unix.Getxattr("/proc/self/fd/"+strconv.Itoa(int(dir.Fd())), "system.posix_acl_default", nil)
	return !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP)
}

// dirCacheSize is how many directories the cache may hold open: an eighth
// of the descriptors the process may open, within [16, 1024].
func dirCacheSize() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 16
	}
	return int(min(max(rl.Cur/8, 16), 1024))
}

// smallTableCache is how many directories the cache may hold open while
// the descriptors extraction holds at once (from lowest, the lowest
// descriptor free when it starts: the cache, the files queued for the
// workers and those they write) stay below smallTable.
func smallTableCache(lowest int) int {
	return max(smallTable-fdSlack-lowest-fileQueue-runtime.GOMAXPROCS(0), 16)
}

// A process's descriptor table grows past smallTable entries only after an
// RCU grace period when the process has several threads, as every Go
// program has (synchronize_rcu in the kernel's expand_fdtable): 7.5 to 47 ms
// on the bench machine (the growths to 128 and 256 entries were not
// measurable), during which a thread that opens a descriptor past the old
// size waits too. fdSlack is left for what the rest of the process opens
// meanwhile.
const (
	smallTable = 256
	fdSlack    = 16
)

// growTable grows the descriptor table to hold the full directory cache
// and lets the cache use it. It runs beside the extraction, which meanwhile
// opens its descriptors in the small table and does not wait for the
// grace period; a process that ends before it returns waits for it.
func (x *extractor) growTable() {
	want := x.lowestFd + x.dirCacheFull + fileQueue + runtime.GOMAXPROCS(0) + fdSlack
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || uint64(want) >= rl.Cur { //nolint:gosec // G115: a small positive count
		return
	}
	fd, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, want)
	_ = unix.Close(fd)
	if err != nil {
		return
	}
	_ = unix.Close(high)
	x.dirCacheMax.Store(int64(x.dirCacheFull))
}

// removeAt is the package's removeAt, noting in x.replaced that something
// was removed.
func (x *extractor) removeAt(pfd int, base string) error {
	removed, err := removeAt(pfd, base)
	if removed {
		x.replaced = true
	}
	return err
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
	// The cached handle on dest would keep its old group and mode.
	x.dropDirs()
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

func (x *extractor) mkdir(parent cachedDir, base, rel string, hdr *tar.Header) error {
	pfd := int(parent.f.Fd())
	// Owner-only until finish applies the real mode, so a read-only
	// directory can still be filled by a non-root caller. Created first
	// and looked at only when the name is taken: most directories of an
	// image are new.
	err := unix.Mkdirat(pfd, base, 0o700)
	created := err == nil
	switch {
	case errors.Is(err, unix.EEXIST):
		if err := x.mkdirOver(pfd, base, rel); err != nil {
			return err
		}
	case err != nil:
		return sysErr("mkdirat", rel, err)
	}
	if x.opts.PreserveOwnership && (!created || !x.ownedAsCreated(parent, hdr)) {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return sysErr("fchownat", rel, err)
		}
	}
	if err := x.setXattrsAt(hdr, pfd, base, true); err != nil {
		return err
	}
	if created && !x.replaced {
		// What the directory cache would otherwise ask the new directory
		// when an entry goes into it (an fstat and a getxattr through
		// /proc): it inherits its parent's setgid bit and default ACL,
		// unless the entry brings a default ACL of its own.
		_, acl := hdr.PAXRecords[paxXattrPrefix+"system.posix_acl_default"]
		x.dirAttrs[rel] = cachedDir{setgid: parent.setgid, umaskRules: parent.umaskRules && !acl}
	}
	x.deferDir(rel, hdr)
	return nil
}

// mkdirOver handles a directory entry whose name is taken: a directory
// stays (its owner, mode and xattrs are changed, so what the directory
// cache knows of it is dropped), anything else (a symlink to a directory
// included) is replaced by a new directory.
func (x *extractor) mkdirOver(pfd int, base, rel string) error {
	st, exists, err := lstatAt(pfd, base)
	if err != nil {
		return sysErr("fstatat", rel, err)
	}
	if exists && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		x.replaced = true
		if !x.privileged && st.Mode&0o700 != 0o700 {
			if err := unix.Fchmodat(pfd, base, (st.Mode&0o7777)|0o700, 0); err != nil {
				return sysErr("fchmodat", rel, err)
			}
		}
		return nil
	}
	if err := x.removeAt(pfd, base); err != nil {
		return fmt.Errorf("replace %s with a directory: %w", rel, err)
	}
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
		return sysErr("mkdirat", rel, err)
	}
	return nil
}

// ownedAsCreated reports whether a node just created in parent already
// has the owner hdr names: the process's own user and group, in a
// directory that is not setgid (whose group it would take instead).
func (x *extractor) ownedAsCreated(parent cachedDir, hdr *tar.Header) bool {
	return hdr.Uid == x.euid && hdr.Gid == x.egid && !parent.setgid
}

func (x *extractor) writeFile(parent cachedDir, base, rel string, hdr *tar.Header, r io.Reader) error {
	// O_EXCL|O_NOFOLLOW: whatever is at the name (from an earlier layer,
	// or an attack) is never written through. If something is there, it
	// is removed and the create tried once more; anything found then is a
	// race, and an error. Read-write only so that opts.Content can read
	// the file back.
	const flags = unix.O_RDWR | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	j := fileJob{rel: rel, hdr: hdr, chmod: true, chown: x.opts.PreserveOwnership && !x.ownedAsCreated(parent, hdr)}
	createMode := uint32(0o600)
	if perm := entryPerm(hdr); parent.umaskRules && perm&^0o777 == 0 && perm&x.umask == 0 {
		// Created with its mode: the umask leaves it whole, and there is
		// no setuid or setgid bit for chown to clear. The descriptor is
		// writable whatever the mode says.
		createMode, j.chmod = perm, false
	}
	pfd := int(parent.f.Fd())
	fd, err := unix.Openat(pfd, base, flags, createMode)
	if errors.Is(err, unix.EEXIST) {
		if err := x.removeAt(pfd, base); err != nil {
			return fmt.Errorf("replace %s: %w", rel, err)
		}
		fd, err = unix.Openat(pfd, base, flags, createMode)
	}
	if err != nil {
		return sysErr("openat", rel, err)
	}
	j.fd = fd
	if x.files != nil && contiguous(hdr) {
		// The content lies in the archive file at the reader's position:
		// a worker reads it from there, and the tar reader seeks past it.
		j.off = x.pos.pos
		x.files <- j
		return nil
	}
	// Without a worker (an archive that is not a file, or a sparse entry,
	// whose content archive/tar reassembles): inline, from the tar reader.
	if x.buf == nil {
		x.buf = make([]byte, copyBufSize)
	}
	err = x.fillFile(j, r, x.buf, x.hash, x.src)
	if cerr := unix.Close(fd); cerr != nil && err == nil {
		err = sysErr("close", rel, cerr)
	}
	return err
}

func (x *extractor) symlink(parent cachedDir, base, rel string, hdr *tar.Header) error {
	if hdr.Linkname == "" {
		return errdefs.InvalidArgument("symlink with an empty target")
	}
	// The target is data: it is only ever interpreted inside the pod's
	// root, where an absolute or ../ target is harmless. Whatever has the
	// name already (an earlier entry or layer) is replaced.
	pfd := int(parent.f.Fd())
	err := unix.Symlinkat(hdr.Linkname, pfd, base)
	if errors.Is(err, unix.EEXIST) {
		if err := x.removeAt(pfd, base); err != nil {
			return fmt.Errorf("replace %s: %w", rel, err)
		}
		err = unix.Symlinkat(hdr.Linkname, pfd, base)
	}
	if err != nil {
		return sysErr("symlinkat", rel, err)
	}
	if x.opts.PreserveOwnership && !x.ownedAsCreated(parent, hdr) {
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
	trel, ok, err := x.relPath(hdr.Linkname)
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
	if x.opts.Layer {
		// A layer's hard link may name a file of an earlier layer, already
		// in dest; it is looked up in root below like any other.
		kept, seen = true, true
	}
	switch {
	case !seen:
		return errdefs.InvalidArgument("hardlink target %q is not an earlier entry of the image", hdr.Linkname)
	case !kept:
		return errdefs.InvalidArgument("hardlink target %q was filtered out (a path whitelist must list both names of a hardlink)", hdr.Linkname)
	}
	// The target is looked up in root like any path, so a symlink planted
	// since cannot redirect it to the host; linkat without
	// AT_SYMLINK_FOLLOW never follows its last component.
	// Not x.dir, which may close the entry's parent to make room.
	tparent := x.dirCache[path.Dir(trel)].f
	if tparent == nil {
		tparent, err = x.openDir(path.Dir(trel), false)
		if err != nil {
			return fmt.Errorf("open hardlink target directory: %w", err)
		}
		defer func() { _ = tparent.Close() }()
	}
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
	if err := x.removeAt(pfd, base); err != nil {
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
	if err := x.removeAt(pfd, base); err != nil {
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
		parent, err := x.dir(path.Dir(rel), false)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("set metadata of directory %s: %w", rel, err)
		}
		if err := x.finishDir(int(parent.f.Fd()), path.Base(rel), rel, m); err != nil {
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
// directory fd opened with O_NOFOLLOW. A missing name is not an error;
// removed says whether there was something.
func removeAt(pfd int, base string) (removed bool, err error) {
	err = unix.Unlinkat(pfd, base, 0)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return false, sysErr("unlinkat", base, err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, sysErr("openat", base, err)
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
		return true, fmt.Errorf("list %s: %w", base, err)
	}
	for _, n := range names {
		if _, err := removeAt(fd, n); err != nil {
			return true, err
		}
	}
	if err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return true, sysErr("rmdir", base, err)
	}
	return true, nil
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
