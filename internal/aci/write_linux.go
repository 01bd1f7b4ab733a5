package aci

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
)

// WriteOptions say how Write packs an image. The zero value writes an
// uncompressed archive that keeps the tree's owners, modes and times (what
// nscn export does).
type WriteOptions struct {
	// Gzip compresses the archive, at GzipLevel (0: gzip's default).
	Gzip      bool
	GzipLevel int
	// OwnerRoot writes every entry as owned by 0:0, whoever owns the
	// files (actool build --owner-root): an image built by an
	// unprivileged user.
	OwnerRoot bool
	// NormalizeModes writes 0755 for directories and for files with any
	// execute bit, 0644 for the other files (special bits dropped), so
	// that the archive does not depend on the builder's umask.
	NormalizeModes bool
	// ModTime, when set, is the time of every entry, the manifest's
	// included (SOURCE_DATE_EPOCH): with OwnerRoot and NormalizeModes,
	// the same tree gives the same bytes. Unset, entries keep their
	// files' times and the manifest gets the current time.
	ModTime time.Time
}

// Writer writes an ACI (https://github.com/appc/spec/blob/v0.8.11/spec/aci.md):
// a tar holding the manifest first, then the entries of "rootfs/", with
// WriteOptions applied to every entry. It is the one place nscn packs an
// image: export, the stage1 image builder, the test and bench fixtures.
type Writer struct {
	o  WriteOptions
	zw *gzip.Writer
	tw *tar.Writer
}

// NewWriter starts an ACI on w with manifest as its "manifest" entry.
func NewWriter(w io.Writer, manifest []byte, o WriteOptions) (*Writer, error) {
	aw := &Writer{o: o}
	out := w
	if o.Gzip {
		level := o.GzipLevel
		if level == 0 {
			level = gzip.DefaultCompression
		}
		var err error
		if aw.zw, err = gzip.NewWriterLevel(w, level); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		out = aw.zw
	}
	aw.tw = tar.NewWriter(out)
	mtime := o.ModTime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: manifestName, Mode: 0o644, Size: int64(len(manifest)), ModTime: mtime}
	if err := aw.tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	if _, err := aw.tw.Write(manifest); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	return aw, nil
}

// Add writes one entry of the rootfs, hdr.Name being "rootfs" or below
// it, and for a regular file hdr.Size bytes of content from r (nil for
// other entries). Owner, mode and time follow the WriteOptions.
func (w *Writer) Add(hdr *tar.Header, r io.Reader) error {
	if rel, ok := strings.CutPrefix(hdr.Name, "rootfs"); !ok || (rel != "" && rel[0] != '/') {
		return errdefs.InvalidArgument("image entry %q is not under rootfs/", hdr.Name)
	}
	if w.o.OwnerRoot {
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	}
	if !w.o.ModTime.IsZero() {
		hdr.ModTime = w.o.ModTime
	}
	if w.o.NormalizeModes {
		hdr.Mode = normalMode(hdr.Typeflag, hdr.Mode)
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	if hdr.Typeflag != tar.TypeReg || r == nil {
		return nil
	}
	if _, err := io.CopyN(w.tw, r, hdr.Size); err != nil {
		if errors.Is(err, io.EOF) {
			return errdefs.Unavailable("write %s: its content is shorter than %d bytes", hdr.Name, hdr.Size)
		}
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	return nil
}

// Close finishes the archive (and its compression); it does not close
// the underlying writer.
func (w *Writer) Close() error {
	if err := w.tw.Close(); err != nil {
		return fmt.Errorf("finish tar: %w", err)
	}
	if w.zw != nil {
		if err := w.zw.Close(); err != nil {
			return fmt.Errorf("finish gzip: %w", err)
		}
	}
	return nil
}

// Write writes an ACI to w: manifest, then the tree at rootfs as
// "rootfs/", in lexical order.
//
// The tree may be hostile (an exited app's files): it is read through an
// os.Root, never following a symlink out of it, and a file that changes
// type or shrinks between listing and reading is an error of class
// errdefs.ErrUnavailable. Hard links within the tree are written once and
// linked after; sockets, which tar cannot hold, are left out.
func Write(ctx context.Context, w io.Writer, manifest []byte, rootfs string, o WriteOptions) error {
	aw, err := NewWriter(w, manifest, o)
	if err != nil {
		return err
	}
	if err := aw.AddTree(ctx, rootfs); err != nil {
		return err
	}
	return aw.Close()
}

// fileID identifies an inode, to write hard links once.
type fileID struct{ dev, ino uint64 }

// AddTree writes the tree at dir as the rootfs: "rootfs/" and every
// file below it, in lexical order (see Write).
func (w *Writer) AddTree(ctx context.Context, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open root filesystem: %w", err)
	}
	defer func() { _ = root.Close() }()
	links := make(map[fileID]string)
	n := 0
	return fs.WalkDir(root.FS(), ".", func(rel string, _ fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read rootfs/%s: %w", rel, err)
		}
		if n++; n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		name := "rootfs"
		if rel != "." {
			name += "/" + rel
		}
		fi, err := root.Lstat(rel)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		hdr, copyData, err := header(root, rel, name, fi, links)
		if err != nil || hdr == nil {
			return err
		}
		if !copyData {
			return w.Add(hdr, nil)
		}
		return w.addFile(root, rel, fi, hdr)
	})
}

// header is the tar header of the file rel (named name in the archive),
// whether its content follows, or nil for a file tar cannot hold.
func header(root *os.Root, rel, name string, fi fs.FileInfo, links map[fileID]string) (*tar.Header, bool, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, false, fmt.Errorf("read %s: no file status", name)
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: fi.ModTime(),
	}
	copyData := false
	switch fi.Mode().Type() {
	case 0:
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		id := fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)} //nolint:unconvert // the field types differ between platforms
		if first, ok := links[id]; ok && st.Nlink > 1 {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		} else {
			copyData = true
			if st.Nlink > 1 {
				links[id] = name
			}
		}
	case fs.ModeDir:
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	case fs.ModeSymlink:
		hdr.Typeflag = tar.TypeSymlink
		target, err := root.Readlink(rel)
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", name, err)
		}
		hdr.Linkname = target
	case fs.ModeDevice | fs.ModeCharDevice, fs.ModeDevice:
		hdr.Typeflag = tar.TypeBlock
		if fi.Mode()&fs.ModeCharDevice != 0 {
			hdr.Typeflag = tar.TypeChar
		}
		rdev := uint64(st.Rdev) //nolint:unconvert // the field type differs between platforms
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(rdev)), int64(unix.Minor(rdev))
	case fs.ModeNamedPipe:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, false, nil // a socket: tar has no such entry
	}
	return hdr, copyData, nil
}

// normalMode is the mode NormalizeModes writes for an entry of type typ
// whose file has mode perm.
func normalMode(typ byte, perm int64) int64 {
	switch {
	case typ == tar.TypeSymlink:
		return 0o777
	case typ == tar.TypeDir, perm&0o111 != 0:
		return 0o755
	default:
		return 0o644
	}
}

// addFile writes the regular file rel, which must still be the file fi
// describes: exactly fi.Size() bytes.
func (w *Writer) addFile(root *os.Root, rel string, fi fs.FileInfo, hdr *tar.Header) error {
	name := "rootfs/" + rel
	// O_NONBLOCK: a FIFO swapped in meanwhile must not block the open.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer func() { _ = f.Close() }()
	now, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if !now.Mode().IsRegular() || !os.SameFile(fi, now) {
		return errdefs.Unavailable("read %s: it changed while it was archived", name)
	}
	return w.Add(hdr, f)
}
