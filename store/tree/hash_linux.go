package tree

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// hashRootfs returns the content hash of a rendered rootfs: the algorithm
// (contentAlgo for new trees; trees rendered before it use sha256 or
// sha512), "-", and the hex digest, with that algorithm, of one record per
// entry, in a depth-first walk with each directory's entries sorted by
// name. A record holds the entry's path relative to rootfs, its type, its
// permission bits (setuid, setgid and sticky included), owner, group, and
// by type the size and digest of a file's content (in the same
// algorithm), a symlink's target, a device's numbers; and every xattr
// but security.selinux (a label the host assigns, not image content). Times
// are left out: they are not content, and directory times change whenever
// a name is added or removed. Each field is length-prefixed, so no two
// different trees give the same byte stream.
//
// The walk never follows symlinks, and files are opened with O_NOFOLLOW.
// known holds the records of regular files extraction wrote, by device and
// inode (see contentHasher); it may be nil. On a filesystem whose
// directory entries carry the inode number of the file they name (see
// direntInos), a regular file whose entry's inode number is there is
// encoded from its record and its xattrs alone (the xattrs too when the
// record says it has none); elsewhere, a regular file of the recorded
// size is only not read again. The walk may run while extraction writes
// its last files (contentHasher): a regular file is taken from the tree
// only once extraction has ended, or from its record once that is in.
//
// The records are made in parallel: listers list the directories in walk
// order (the listing says which entries are directories, regular files,
// and their inode numbers), a subtree on a goroutine of its own while
// there is a processor for it, and cut the entries into batches; workers
// stat, read and encode a batch each; the batches are hashed in walk
// order. The result is the serial walk's. A lister takes what the hash
// records of a directory from the descriptor it lists it with (fstat,
// flistxattr), and of a symlink relative to its directory (fstatat,
// readlinkat, listxattrat), which spares the workers a lookup of each
// one's whole path.
func hashRootfs(ctx context.Context, rootfs, algo string, known *contentHasher) (string, error) {
	newHash, err := hashFunc(algo)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rootFd, err := unix.Open(rootfs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("hash tree: %w", &os.PathError{Op: "open", Path: rootfs, Err: err})
	}
	var rootSt unix.Stat_t
	if err := unix.Fstat(rootFd, &rootSt); err != nil {
		_ = unix.Close(rootFd)
		return "", fmt.Errorf("hash tree: %w", &os.PathError{Op: "fstat", Path: rootfs, Err: err})
	}
	sh := &walkShared{root: rootfs, newHash: newHash, known: known, content: map[[2]uint64][]byte{}}
	if known != nil && direntInos(rootFd) {
		sh.dev = rootSt.Dev
	}
	// A batch goes to work before its segment, so every batch the hashing
	// loop waits for reaches a worker.
	work := make(chan *walkBatch, walkQueue)
	procs := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for range procs {
		wg.Go(func() {
			w := &hashWalker{walkShared: sh}
			for b := range work {
				if b.err = ctx.Err(); b.err == nil {
					b.err = w.records(ctx, b)
				}
				close(b.done)
			}
		})
	}
	ls := &listShared{ctx: ctx, cancel: cancel, known: known, dev: sh.dev, work: work, slots: make(chan struct{}, procs-1)}
	first := newSegment()
	go func() {
		l := ls.newLister(first)
		if err := l.list(rootFd); err != nil {
			ls.fail(err)
		}
		close(l.seg.batches)
		close(l.seg.next)
		ls.wg.Wait()
		close(work)
	}()
	sum := newHash()
	var walkErr error
	for seg := first; seg != nil; seg = <-seg.next {
		for b := range seg.batches {
			if walkErr != nil {
				continue // drain
			}
			<-b.done
			if b.err != nil {
				walkErr = b.err
				cancel()
				continue
			}
			sum.Write(b.rec)
		}
	}
	wg.Wait() // the workers, which end once every lister has
	if err := ls.firstErr(); err != nil {
		walkErr = err
	}
	if walkErr != nil {
		return "", fmt.Errorf("hash tree: %w", walkErr)
	}
	return algo + "-" + hex.EncodeToString(sum.Sum(nil)), nil
}

const (
	// walkBatchSize is how many entries a worker encodes at a time:
	// enough that handing batches around costs little next to the
	// system calls of their entries.
	walkBatchSize = 64
	// walkQueue bounds the batches listed ahead of the hashing.
	walkQueue = 64
)

// walkEntry is an entry of the tree as its directory listing shows it.
type walkEntry struct {
	rel   string
	isDir bool
	// maybeReg: the listing says a regular file, or does not say; until
	// extraction has ended, such a file may still be written.
	maybeReg bool
	// ino is the inode number of a regular file whose record is in
	// walkShared.known, or may be once extraction has ended (0: look the
	// file up).
	ino uint64
	// noXattrs: the lister found that the entry has no xattrs.
	noXattrs bool
	// stat: a directory or a symlink the lister looked at (the directory
	// through the descriptor it lists it with, the symlink relative to
	// its directory), whose record takes typ, perm, uid, gid, target and
	// noXattrs from that instead of a lookup of its path by a worker.
	stat     bool
	typ      byte // 'd' or 'l'
	perm     uint32
	uid, gid uint32
	target   string // a symlink's
}

type walkBatch struct {
	ents []walkEntry
	rec  []byte        // the entries' records, filled by a worker
	err  error         // the worker's
	done chan struct{} // closed when rec or err is set
}

func newWalkBatch() *walkBatch {
	return &walkBatch{ents: make([]walkEntry, 0, walkBatchSize), done: make(chan struct{})}
}

// segment is a run of the walk's batches, in walk order, that one lister
// goroutine sends; next then gives the segment that follows (closed at the
// end of the walk). A lister that hands a subtree to a goroutine of its
// own ends its segment there: the subtree is the next segment, and the
// lister goes on with the one the subtree's goroutine links after its
// last.
type segment struct {
	batches chan *walkBatch
	next    chan *segment // one send, or the close at the end
}

func newSegment() *segment {
	return &segment{batches: make(chan *walkBatch, walkQueue), next: make(chan *segment, 1)}
}

// listShared is what the listers of one walk share.
type listShared struct {
	ctx    context.Context
	cancel func()
	known  *contentHasher
	dev    uint64 // of the rootfs, when inode numbers from listings identify records; else 0
	work   chan<- *walkBatch
	// slots bounds the lister goroutines beyond the first.
	slots chan struct{}
	wg    sync.WaitGroup // the lister goroutines beyond the first
	// noXattrat is set once listxattrat turns out to be missing (before
	// Linux 6.13): workers then list the xattrs of every file by path.
	noXattrat atomic.Bool

	mu  sync.Mutex
	err error // the first lister's error
}

func (ls *listShared) fail(err error) {
	ls.mu.Lock()
	if ls.err == nil {
		ls.err = err
	}
	ls.mu.Unlock()
	ls.cancel()
}

func (ls *listShared) firstErr() error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.err
}

// lister lists a tree, or a subtree, in walk order: an entry, then (for a
// directory) its entries sorted by name, depth first. Each directory is
// opened relative to its parent, without following a symlink.
type lister struct {
	*listShared
	seg     *segment   // where batches go
	cur     *walkBatch // being filled
	buf     []byte     // for getdents
	linkBuf [unix.PathMax]byte
}

func (ls *listShared) newLister(seg *segment) *lister {
	return &lister{listShared: ls, seg: seg, cur: newWalkBatch(), buf: make([]byte, direntBufSize)}
}

// list lists the tree whose root directory is fd, and closes fd.
func (l *lister) list(fd int) error {
	e, dev, err := dirEntry(fd, ".")
	if err == nil {
		err = l.add(e)
	}
	if err != nil {
		_ = unix.Close(fd)
		return err
	}
	if err := l.dir(fd, ".", l.dev != 0 && dev == l.dev); err != nil {
		return err
	}
	return l.flush()
}

// dirEntry returns the walk's entry for the directory fd, rel in the
// tree, with what its record takes from the descriptor (the directory's
// mode, owner, and whether it has xattrs), and its device.
func dirEntry(fd int, rel string) (walkEntry, uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return walkEntry{}, 0, &os.PathError{Op: "fstat", Path: rel, Err: err}
	}
	e := walkEntry{
		rel: rel, isDir: true, stat: true, typ: 'd',
		perm: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid,
		noXattrs: fdHasNoXattrs(fd),
	}
	return e, st.Dev, nil
}

// symlink fills in e, the symlink name in the directory fd, as a worker
// would from its path; e is left to the worker when name turns out not to
// be a symlink any more.
func (l *lister) symlink(fd int, name string, e *walkEntry) error {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "fstatat", Path: e.rel, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return nil
	}
	buf := l.linkBuf[:]
	n, err := unix.Readlinkat(fd, name, buf)
	if err != nil {
		return &os.PathError{Op: "readlinkat", Path: e.rel, Err: err}
	}
	if n == len(buf) {
		return nil // longer than the buffer: the worker's readlink
	}
	e.stat, e.typ = true, 'l'
	e.perm, e.uid, e.gid = st.Mode&0o7777, st.Uid, st.Gid
	e.target = string(buf[:n])
	e.noXattrs = l.hasNoXattrs(fd, name)
	return nil
}

// dir lists the directory fd, rel in the tree, and closes fd. byIno says
// whether regular files may be found by the inode number of their entry:
// the directory is on the rootfs's filesystem, not a mount over it.
func (l *lister) dir(fd int, rel string, byIno bool) error {
	ents, err := readDirents(fd, l.buf)
	if err != nil {
		_ = unix.Close(fd)
		return &os.PathError{Op: "readdir", Path: rel, Err: err}
	}
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	// The subdirectories are opened while fd is open: relative to it.
	for i := range ents {
		e := &ents[i]
		if e.typ == unix.DT_UNKNOWN {
			var st unix.Stat_t
			if err := unix.Fstatat(fd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				_ = unix.Close(fd)
				return &os.PathError{Op: "fstatat", Path: path.Join(rel, e.name), Err: err}
			}
			e.typ = direntType(st.Mode)
		}
	}
	err = l.entries(fd, rel, ents, byIno)
	if cerr := unix.Close(fd); cerr != nil && err == nil {
		err = &os.PathError{Op: "close", Path: rel, Err: cerr}
	}
	return err
}

func (l *lister) entries(fd int, rel string, ents []dirent, byIno bool) error {
	for _, e := range ents {
		if err := l.ctx.Err(); err != nil {
			return err
		}
		child := walkEntry{rel: path.Join(rel, e.name), isDir: e.typ == unix.DT_DIR, maybeReg: e.typ == unix.DT_REG || e.typ == unix.DT_UNKNOWN}
		if byIno && e.typ == unix.DT_REG && l.known != nil {
			// The file's record, if it gets one, is final only once
			// extraction has ended (a record already there may be that
			// of an earlier file with the same inode number): the
			// worker looks then.
			child.ino = e.ino
			if l.known.isEnded() {
				if r, ok := l.known.get([2]uint64{l.dev, e.ino}); ok {
					child.noXattrs = r.noXattrs || l.hasNoXattrs(fd, e.name)
				} else {
					child.ino = 0
				}
			}
		}
		if e.typ == unix.DT_LNK {
			if err := l.symlink(fd, e.name, &child); err != nil {
				return err
			}
		}
		if !child.isDir {
			if err := l.add(child); err != nil {
				return err
			}
			continue
		}
		cfd, err := unix.Openat(fd, e.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "openat", Path: child.rel, Err: err}
		}
		child, dev, err := dirEntry(cfd, child.rel)
		if err == nil {
			err = l.add(child)
		}
		if err != nil {
			_ = unix.Close(cfd)
			return err
		}
		// A mount over the directory: not the rootfs's inode numbers.
		subByIno := byIno && dev == l.dev
		select {
		case l.slots <- struct{}{}:
			if err := l.spawn(cfd, child.rel, subByIno); err != nil {
				return err
			}
		default:
			if err := l.dir(cfd, child.rel, subByIno); err != nil {
				return err
			}
		}
	}
	return nil
}

// spawn lists the subtree of the directory fd, rel in the tree, on a
// goroutine of its own, which holds a slot and closes fd.
func (l *lister) spawn(fd int, rel string, byIno bool) error {
	if err := l.flush(); err != nil {
		_ = unix.Close(fd)
		<-l.slots
		return err
	}
	sub, rest := newSegment(), newSegment()
	l.seg.next <- sub
	close(l.seg.batches)
	l.seg = rest
	l.wg.Go(func() {
		defer func() { <-l.slots }()
		s := l.newLister(sub)
		err := s.dir(fd, rel, byIno)
		if err == nil {
			err = s.flush()
		}
		if err != nil {
			l.fail(err)
		}
		close(s.seg.batches)
		s.seg.next <- rest
	})
	return nil
}

// hasNoXattrs reports whether the file name in the directory fd has no
// xattrs (false: it has, or it could not be told), from the directory
// (listxattrat), which spares the worker a lookup of the whole path.
func (l *lister) hasNoXattrs(fd int, name string) bool {
	if l.noXattrat.Load() {
		return false
	}
	n, err := listxattrat(fd, name)
	if errors.Is(err, unix.ENOSYS) {
		l.noXattrat.Store(true)
		return false
	}
	return (err == nil && n == 0) || errors.Is(err, unix.ENOTSUP)
}

func (l *lister) add(e walkEntry) error {
	l.cur.ents = append(l.cur.ents, e)
	if len(l.cur.ents) < walkBatchSize {
		return nil
	}
	return l.flush()
}

func (l *lister) flush() error {
	b := l.cur
	if len(b.ents) == 0 {
		return nil
	}
	l.cur = newWalkBatch()
	for _, q := range []chan<- *walkBatch{l.work, l.seg.batches} {
		select {
		case q <- b:
		case <-l.ctx.Done():
			return l.ctx.Err()
		}
	}
	return nil
}

// walkShared is what the workers of one walk share.
type walkShared struct {
	root    string
	newHash func() hash.Hash
	known   *contentHasher
	// dev is the rootfs's device when regular files are found in known
	// by the inode number of their directory entry (walkEntry.ino).
	dev uint64
	// content caches the digests of files with several names, by device
	// and inode, so that a hard-linked file is read once (or, when two
	// workers meet its names at once, twice: the digest is the same).
	mu      sync.Mutex
	content map[[2]uint64][]byte
}

// hashWalker is a worker's state.
type hashWalker struct {
	*walkShared
	rec    []byte   // the batch's records being encoded
	buf    []byte   // for reading file contents
	numBuf [20]byte // a number's decimal digits
}

// records encodes the entries of b into b.rec.
func (w *hashWalker) records(ctx context.Context, b *walkBatch) error {
	w.rec = b.rec[:0]
	for _, e := range b.ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.entry(e); err != nil {
			return err
		}
	}
	b.rec, w.rec = w.rec, nil
	return nil
}

func (w *hashWalker) entry(e walkEntry) error {
	rel := e.rel
	full := w.root + "/" + rel // rel is clean
	if e.maybeReg {
		// A regular file's metadata and record are final once extraction
		// has closed it.
		w.known.waitEnded()
	}
	if e.ino != 0 {
		if r, ok := w.known.get([2]uint64{w.dev, e.ino}); ok {
			return w.recorded(e, r, full)
		}
	}
	if e.stat {
		w.field([]byte(rel))
		w.field([]byte{e.typ})
		w.num(uint64(e.perm))
		w.num(uint64(e.uid))
		w.num(uint64(e.gid))
		if e.typ == 'l' {
			w.field([]byte(e.target))
		}
		if e.noXattrs {
			w.num(0)
			return nil
		}
		return w.xattrs(full, rel)
	}
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: rel, Err: err}
	}
	if (st.Mode&unix.S_IFMT == unix.S_IFDIR) != e.isDir {
		return fmt.Errorf("%s: changed while the tree was hashed", rel)
	}
	w.field([]byte(rel))
	w.field([]byte{typeChar(st.Mode)})
	w.num(uint64(st.Mode & 0o7777))
	w.num(uint64(st.Uid))
	w.num(uint64(st.Gid))
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		d, err := w.fileDigest(full, rel, &st)
		if err != nil {
			return err
		}
		w.num(uint64(st.Size)) //nolint:gosec // G115: a file size is non-negative
		w.field(d)
	case unix.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		w.field([]byte(target))
	case unix.S_IFCHR, unix.S_IFBLK:
		w.num(uint64(unix.Major(st.Rdev)))
		w.num(uint64(unix.Minor(st.Rdev)))
	}
	return w.xattrs(full, rel)
}

// recorded encodes the regular file e from its record r.
func (w *hashWalker) recorded(e walkEntry, r fileRecord, full string) error {
	w.field([]byte(e.rel))
	w.field([]byte{'f'})
	w.num(uint64(r.perm))
	w.num(uint64(r.uid))
	w.num(uint64(r.gid))
	w.num(uint64(r.size)) //nolint:gosec // G115: a file size is non-negative
	w.field(r.digest)
	if e.noXattrs || r.noXattrs {
		w.num(0)
		return nil
	}
	// From the tree: the kernel may add one when extraction closes the
	// file (security.ima).
	return w.xattrs(full, e.rel)
}

func (w *hashWalker) fileDigest(full, rel string, st *unix.Stat_t) ([]byte, error) {
	id := [2]uint64{st.Dev, st.Ino}
	if r, ok := w.known.get(id); ok && r.size == st.Size {
		return r.digest, nil
	}
	if st.Nlink > 1 {
		w.mu.Lock()
		d, ok := w.content[id]
		w.mu.Unlock()
		if ok {
			return d, nil
		}
	}
	f, err := os.OpenFile(full, os.O_RDONLY|oNoFollow, 0) //nolint:gosec // G304: a path in the store's own directory
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	if w.buf == nil {
		w.buf = make([]byte, 256<<10)
	}
	h := w.newHash()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, w.buf); err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	d := h.Sum(nil)
	if st.Nlink > 1 {
		w.mu.Lock()
		w.content[id] = d
		w.mu.Unlock()
	}
	return d, nil
}

func (w *hashWalker) xattrs(full, rel string) error {
	names, err := listXattrs(full)
	if err != nil {
		return &os.PathError{Op: "llistxattr", Path: rel, Err: err}
	}
	w.num(uint64(len(names)))
	for _, n := range names {
		v, err := getXattr(full, n)
		if err != nil {
			return &os.PathError{Op: "lgetxattr " + n, Path: rel, Err: err}
		}
		w.field([]byte(n))
		w.field(v)
	}
	return nil
}

// listXattrs returns the sorted xattr names of p (not followed), without
// security.selinux.
func listXattrs(p string) ([]string, error) {
	var buf []byte
	for {
		n, err := unix.Llistxattr(p, nil)
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil || n == 0 {
			return nil, err
		}
		buf = make([]byte, n)
		n, err = unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew between the two calls
		}
		if err != nil {
			return nil, err
		}
		buf = buf[:n]
		break
	}
	var names []string
	for _, n := range bytes.Split(buf, []byte{0}) {
		if len(n) > 0 && string(n) != "security.selinux" {
			names = append(names, string(n))
		}
	}
	sort.Strings(names)
	return names, nil
}

func getXattr(p, name string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, n)
		n, err = unix.Lgetxattr(p, name, v)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return v[:n], nil
	}
}

// field appends b to the record, prefixed with its length.
func (w *hashWalker) field(b []byte) {
	w.rec = binary.AppendUvarint(w.rec, uint64(len(b)))
	w.rec = append(w.rec, b...)
}

func (w *hashWalker) num(v uint64) {
	w.field(strconv.AppendUint(w.numBuf[:0], v, 10))
}

func typeChar(mode uint32) byte {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return 'd'
	case unix.S_IFREG:
		return 'f'
	case unix.S_IFLNK:
		return 'l'
	case unix.S_IFCHR:
		return 'c'
	case unix.S_IFBLK:
		return 'b'
	case unix.S_IFIFO:
		return 'p'
	case unix.S_IFSOCK:
		return 's'
	default:
		return '?'
	}
}
