package vm

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// cpioWriter writes a cpio archive in the "newc" format, the one the
// kernel unpacks as an initramfs (Documentation/driver-api/early-userspace/
// buffer-format.rst in the kernel tree): each entry is a 110-byte ASCII
// header, the NUL-terminated name padded to 4 bytes, and the data padded
// to 4 bytes; a "TRAILER!!!" entry ends the archive. Archives can be
// concatenated, and the kernel unpacks them in order, which is how the
// test scripts are added to the cached base image.
//
// Entries are owned by root with mtime 0, so that the archive depends only
// on its content. Parent directories are created as needed, since the
// kernel does not make them. Device nodes are written as entries, so no
// mknod (and no root) is needed to build the archive.
type cpioWriter struct {
	w    *bufio.Writer
	n    int64 // bytes written, for the padding
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCPIOWriter(w io.Writer, firstIno uint32) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), ino: firstIno, dirs: map[string]bool{".": true}}
}

// clean turns an absolute or relative name into the archive's relative
// form ("bin/busybox"); it rejects names that leave the root.
func cleanName(name string) (string, error) {
	n := path.Clean("/" + name)
	if n == "/" || strings.Contains(name, "\x00") {
		return "", fmt.Errorf("cpio entry name %q: not a path below the root", name)
	}
	return n[1:], nil
}

func (c *cpioWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	m, err := c.w.Write(p)
	c.n += int64(m)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// header writes one entry's header and name. mode holds the file type
// bits (S_IFREG and so on) and the permissions.
func (c *cpioWriter) header(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32) {
	c.ino++
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
}

// parents writes the directories above name that were not written yet.
func (c *cpioWriter) parents(name string) {
	dir := path.Dir(name)
	if c.dirs[dir] {
		return
	}
	c.parents(dir)
	c.dirs[dir] = true
	c.header(dir, 0o040755, 0, 0, 0)
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm fs.FileMode) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	if c.dirs[n] {
		return c.err
	}
	c.parents(n)
	c.dirs[n] = true
	c.header(n, 0o040000|uint32(perm.Perm()), 0, 0, 0)
	return c.err
}

// Bytes adds a regular file with the given content.
func (c *cpioWriter) Bytes(name string, perm fs.FileMode, data []byte) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	c.parents(n)
	c.header(n, 0o100000|uint32(perm.Perm()), int64(len(data)), 0, 0)
	c.write(data)
	c.pad()
	return c.err
}

// File adds the host file src as name, with permissions perm, or src's
// if perm is 0.
func (c *cpioWriter) File(name, src string, perm fs.FileMode) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	f, err := os.Open(src) //nolint:gosec // G304: a file the harness's caller puts in the initramfs
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("add %s to the initramfs: not a regular file", src)
	}
	if perm == 0 {
		perm = fi.Mode()
	}
	c.parents(n)
	c.header(n, 0o100000|uint32(perm.Perm()), fi.Size(), 0, 0)
	if c.err != nil {
		return c.err
	}
	m, err := io.Copy(c.w, io.LimitReader(f, fi.Size()))
	c.n += m
	if err != nil {
		c.err = fmt.Errorf("add %s to the initramfs: %w", src, err)
		return c.err
	}
	if m != fi.Size() {
		c.err = fmt.Errorf("add %s to the initramfs: it shrank while being read", src)
		return c.err
	}
	c.pad()
	return c.err
}

// Symlink adds a symbolic link name pointing to target.
func (c *cpioWriter) Symlink(name, target string) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	c.parents(n)
	c.header(n, 0o120777, int64(len(target)), 0, 0)
	c.write([]byte(target))
	c.pad()
	return c.err
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	c.parents(n)
	c.header(n, 0o020000|uint32(perm.Perm()), 0, major, minor)
	return c.err
}

// Close writes the trailer and flushes; it does not close the underlying
// writer.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}
