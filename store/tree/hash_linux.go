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
	"path/filepath"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"
)

// hashRootfs returns the content hash of a rendered rootfs: the algorithm
// (contentAlgo for new trees; trees rendered before it use sha512), "-",
// and the hex digest, with that algorithm, of one record per entry, in a depth-first walk with each
// directory's entries sorted by name. A record holds the entry's path
// relative to rootfs, its type, its permission bits (setuid, setgid and
// sticky included), owner, group, and by type the size and sha512 of a
// file's content (in the same algorithm), a symlink's target, a device's numbers; and every xattr
// but security.selinux (a label the host assigns, not image content). Times
// are left out: they are not content, and directory times change whenever
// a name is added or removed. Each field is length-prefixed, so no two
// different trees give the same byte stream.
//
// The walk never follows symlinks, and files are opened with O_NOFOLLOW.
// known holds content digests already computed, by device and inode (see
// contentHasher); a regular file of the same size found there is not read
// again. It may be nil.
func hashRootfs(ctx context.Context, rootfs, algo string, known map[[2]uint64]contentDigest) (string, error) {
	newHash, err := hashFunc(algo)
	if err != nil {
		return "", err
	}
	w := &hashWalker{
		ctx:     ctx,
		root:    rootfs,
		newHash: newHash,
		sum:     newHash(),
		content: map[[2]uint64][]byte{},
		known:   known,
		buf:     make([]byte, 256<<10),
	}
	if err := w.walk("."); err != nil {
		return "", fmt.Errorf("hash tree: %w", err)
	}
	return algo + "-" + hex.EncodeToString(w.sum.Sum(nil)), nil
}

type hashWalker struct {
	ctx     context.Context
	root    string
	newHash func() hash.Hash
	sum     hash.Hash
	// content caches file digests by device and inode, so the names of a
	// hard-linked file are read once.
	content map[[2]uint64][]byte
	known   map[[2]uint64]contentDigest
	buf     []byte
	scratch []byte   // a field's length prefix
	numBuf  [20]byte // a number's decimal digits
}

func (w *hashWalker) walk(rel string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	full := filepath.Join(w.root, rel)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: rel, Err: err}
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
	if err := w.xattrs(full, rel); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	ents, err := os.ReadDir(full) // sorted by name
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := w.walk(path.Join(rel, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (w *hashWalker) fileDigest(full, rel string, st *unix.Stat_t) ([]byte, error) {
	id := [2]uint64{st.Dev, st.Ino}
	if d, ok := w.content[id]; ok {
		return d, nil
	}
	if k, ok := w.known[id]; ok && k.size == st.Size {
		return k.digest, nil
	}
	f, err := os.OpenFile(full, os.O_RDONLY|oNoFollow, 0) //nolint:gosec // G304: a path in the store's own directory
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	h := w.newHash()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, w.buf); err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	d := h.Sum(nil)
	if st.Nlink > 1 {
		w.content[id] = d
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

func (w *hashWalker) field(b []byte) {
	w.scratch = binary.AppendUvarint(w.scratch[:0], uint64(len(b)))
	w.sum.Write(w.scratch)
	w.sum.Write(b)
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
