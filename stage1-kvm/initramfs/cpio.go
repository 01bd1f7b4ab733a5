// Package initramfs writes the kvm flavor's initramfs: a newc cpio
// archive (the format the kernel unpacks, Documentation/driver-api/
// early-userspace/buffer-format.rst) of a few directories and regular
// files, all owned by root.
package initramfs

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// Entry is one file of the archive: a directory when Data is nil and Dir
// is set, a regular file otherwise.
type Entry struct {
	Name string // path in the archive, without a leading slash
	Mode fs.FileMode
	Dir  bool
	Data []byte
}

// Write writes entries, each after the directories above it (made 0755
// when not listed), then the trailer.
func Write(w io.Writer, entries []Entry) error {
	cw := &writer{w: w, seen: map[string]bool{}, ino: 1}
	for _, e := range entries {
		name := path.Clean(strings.TrimPrefix(e.Name, "/"))
		if name == "." || strings.HasPrefix(name, "..") {
			return fmt.Errorf("initramfs: bad entry name %q", e.Name)
		}
		cw.parents(name)
		if e.Dir {
			cw.entry(name, 0o040000|uint32(e.Mode.Perm()), nil)
			cw.seen[name] = true
			continue
		}
		cw.entry(name, 0o100000|uint32(e.Mode.Perm()), e.Data)
	}
	cw.entry("TRAILER!!!", 0, nil)
	return cw.err
}

type writer struct {
	w    io.Writer
	n    int64
	ino  uint32
	seen map[string]bool
	err  error
}

func (c *writer) parents(name string) {
	dir := path.Dir(name)
	if dir == "." || c.seen[dir] {
		return
	}
	c.parents(dir)
	c.entry(dir, 0o040755, nil)
	c.seen[dir] = true
}

func (c *writer) entry(name string, mode uint32, data []byte) {
	nlink := 1
	if mode&0o040000 != 0 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.ino++
	c.write([]byte(hdr + name + "\x00"))
	c.pad()
	c.write(data)
	c.pad()
}

func (c *writer) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
}

func (c *writer) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}
