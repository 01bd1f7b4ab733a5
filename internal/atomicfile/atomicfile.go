// Package atomicfile replaces small files so that a reader sees the old
// content or the new, never a torn write: pid files, status files and the
// like that stage1 entrypoints publish for stage0. It runs in any stage and
// needs write access to the directory only.
package atomicfile

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Write replaces dir/name with data, mode 0644, through a temporary file
// created with O_EXCL in dir and a rename. dir must be a trusted directory:
// name is not resolved in a root.
func Write(dir, name string, data []byte) error {
	p, err := Prepare(dir, name)
	if err != nil {
		return err
	}
	return p.Commit(data)
}

// Pending is a replacement of a file that is under way: its temporary
// file exists, empty, and Commit writes it and renames it into place.
// Preparing ahead of time takes the costly part, the creation of an inode
// (and, on an overlayfs, of its upper file), off the path of a caller
// that must publish the content quickly once it is known: stage1-fly
// prepares an app's status file while the app runs and commits it when
// the app exits. A Pending is used once: Commit or Discard.
type Pending struct {
	f    *os.File
	dir  string
	name string
}

// Prepare creates the temporary file of a replacement of dir/name: a
// hidden ".NAME.tmp-N" in dir, created with O_EXCL, already mode 0644.
// Until Commit or Discard, dir/name is unchanged; a process that dies
// meanwhile leaves the temporary file behind, which readers of dir/name
// never see.
func Prepare(dir, name string) (*Pending, error) {
	for range 10000 {
		tmp := filepath.Join(dir, "."+name+".tmp-"+strconv.FormatUint(uint64(rand.Uint32()), 10)) //nolint:gosec // G404: O_EXCL makes the name safe, the randomness only avoids collisions
		fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", name, &os.PathError{Op: "open", Path: tmp, Err: err})
		}
		// A blocking descriptor: NewFile leaves it out of the runtime's
		// poller, whose registration of a regular file only costs
		// system calls.
		f := os.NewFile(uintptr(fd), tmp)
		// Explicitly, whatever the umask.
		if err := f.Chmod(0o644); err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
		return &Pending{f: f, dir: dir, name: name}, nil
	}
	return nil, fmt.Errorf("write %s: no free temporary name in %s", name, dir)
}

// Commit writes data to the temporary file and renames it to dir/name.
// On failure the temporary file is removed and dir/name is unchanged.
func (p *Pending) Commit(data []byte) (err error) {
	tmp := p.f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := p.f.Write(data); err != nil {
		_ = p.f.Close()
		return fmt.Errorf("write %s: %w", p.name, err)
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p.name, err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, p.name)); err != nil {
		return fmt.Errorf("write %s: %w", p.name, err)
	}
	return nil
}

// Discard gives the replacement up: it closes and removes the temporary
// file, and dir/name is unchanged.
func (p *Pending) Discard() {
	_ = p.f.Close()
	_ = os.Remove(p.f.Name())
}
