package tree

// The reference tree hash: the serial walk every tree was hashed with
// before the walk went parallel, kept as it was. hashRootfs must give the
// same result on any tree, or trees rendered before would stop verifying.

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// referenceHash is the serial walk kept as the reference: it reads every
// file and reuses no digest from an earlier hash.
func referenceHash(ctx context.Context, rootfs, algo string) (string, error) {
	newHash, err := hashFunc(algo)
	if err != nil {
		return "", err
	}
	w := &refWalker{
		ctx:     ctx,
		root:    rootfs,
		newHash: newHash,
		sum:     newHash(),
		content: map[[2]uint64][]byte{},
		buf:     make([]byte, 256<<10),
	}
	if err := w.walk("."); err != nil {
		return "", fmt.Errorf("reference hash: %w", err)
	}
	return algo + "-" + hex.EncodeToString(w.sum.Sum(nil)), nil
}

type refWalker struct {
	ctx     context.Context
	root    string
	newHash func() hash.Hash
	sum     hash.Hash
	// content caches file digests by device and inode, so the names of a
	// hard-linked file are read once.
	content map[[2]uint64][]byte
	buf     []byte
	scratch []byte   // a field's length prefix
	numBuf  [20]byte // a number's decimal digits
}

func (w *refWalker) walk(rel string) error {
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

func (w *refWalker) fileDigest(full, rel string, st *unix.Stat_t) ([]byte, error) {
	id := [2]uint64{st.Dev, st.Ino}
	if d, ok := w.content[id]; ok {
		return d, nil
	}
	f, err := os.OpenFile(full, os.O_RDONLY|oNoFollow, 0) //nolint:gosec // G304: a file of the tree being hashed, opened with O_NOFOLLOW
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

func (w *refWalker) xattrs(full, rel string) error {
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

func (w *refWalker) field(b []byte) {
	w.scratch = binary.AppendUvarint(w.scratch[:0], uint64(len(b)))
	w.sum.Write(w.scratch)
	w.sum.Write(b)
}

func (w *refWalker) num(v uint64) {
	w.field(strconv.AppendUint(w.numBuf[:0], v, 10))
}
