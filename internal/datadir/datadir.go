// Package datadir decides who may read nscn's data directory, and gives
// what nscn creates in it the group and modes that follow. The model is
// rkt's: root owns everything; members of the group nscn, where it
// exists, may run the commands that only read (list, status, image list);
// nobody else may read anything. Documentation/security.md, "Least
// privilege on disk", describes it for operators.
//
// Ensure prepares the data directory itself before a command writes to it:
// it creates it, or tightens one an older nscn left readable by every
// user. Below it, MkdirAll, InheritGroup and SetGroupFrom give each new
// directory and file the group of the directory it is in, as a setgid
// directory would, without the setgid bit, which would spread into the
// pods' and images' own trees.
//
// It runs in stage0. Giving a directory to the group needs root (or
// membership of the group); the rest only needs write access.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Group is the group whose members may read the data directory.
const Group = "nscn"

// The modes of what nscn creates below the data directory: readable by
// the group, nothing for other users. Where the group does not exist the
// data directory itself is 0700, so that nothing below it is reachable.
const (
	DirMode  fs.FileMode = 0o750
	FileMode fs.FileMode = 0o640
)

// Perms is the owner group and mode a data directory should have.
type Perms struct {
	// GID is the nscn group's ID, or -1 when the data directory is for
	// its owner alone.
	GID int
}

// Private is the Perms of a data directory for its owner alone.
var Private = Perms{GID: -1}

// Mode is the mode of the data directory itself: DirMode with the group,
// 0700 without.
func (p Perms) Mode() fs.FileMode {
	if p.GID < 0 {
		return 0o700
	}
	return DirMode
}

// Lookup returns the Perms of this host: with the nscn group if it exists
// and nscn runs as root, else Private.
func Lookup() (Perms, error) {
	if os.Geteuid() != 0 {
		return Private, nil
	}
	g, err := user.LookupGroup(Group)
	var unknown user.UnknownGroupError
	// A host without /etc/group (a minimal VM or container) has no nscn
	// group either.
	if errors.As(err, &unknown) || errors.Is(err, fs.ErrNotExist) {
		return Private, nil
	}
	if err != nil {
		return Perms{}, fmt.Errorf("look up group %s: %w", Group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil || gid < 0 {
		return Perms{}, fmt.Errorf("look up group %s: bad group ID %q", Group, g.Gid)
	}
	return Perms{GID: gid}, nil
}

// Ensure makes dir the data directory p describes before a command writes
// below it. A missing dir is created (its parents with mode 0755, as any
// system directory) with p.Mode() and p's group. An existing one is
// tightened: a directory still in group root (or in no group nscn knows)
// is given to the nscn group with DirMode when that group exists; any
// permission bit beyond p.Mode() is removed. Ensure never opens a
// directory up: a data directory an administrator made stricter stays so.
// A data directory of another user is left to them (and root). A dir that
// is not a directory is errdefs.ErrFailedPrecondition.
func Ensure(dir string, p Perms) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("create data directory %s: %w", dir, err)
		}
		if err := os.Mkdir(dir, p.Mode()); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create data directory %s: %w", dir, err)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return errdefs.FailedPrecondition("data directory %s is not a directory", dir)
	}
	mode := fi.Mode()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("data directory %s: no owner information", dir)
	}
	if euid := os.Geteuid(); euid != 0 && int(st.Uid) != euid {
		// Not ours to change: whatever the command writes next fails
		// with the permission error that says why.
		return nil
	}
	want := mode.Perm() & p.Mode()
	if p.GID >= 0 && st.Gid == 0 && p.GID != 0 {
		if err := os.Chown(dir, -1, p.GID); err != nil {
			return fmt.Errorf("give data directory %s to group %s: %w", dir, Group, err)
		}
		want = DirMode
	}
	if want != mode.Perm() {
		special := mode & (fs.ModeSetgid | fs.ModeSetuid | fs.ModeSticky)
		if err := os.Chmod(dir, want|special); err != nil {
			return fmt.Errorf("restrict data directory %s to mode %#o: %w", dir, want, err)
		}
	}
	return nil
}

// MkdirAll is os.MkdirAll for a directory below the data directory: each
// directory it creates gets mode perm (less the umask) and the group of
// the directory it is created in.
func MkdirAll(path string, perm fs.FileMode) error {
	fi, err := os.Stat(path)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: path, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := filepath.Dir(path); parent != path {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(path, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Made by another process meanwhile: its group is its maker's
			// business.
			if fi, serr := os.Lstat(path); serr == nil && fi.IsDir() {
				return nil
			}
		}
		return err
	}
	return InheritGroup(path)
}

// InheritGroup gives path (not followed if a symlink) the group of the
// directory it is in, if it has another.
func InheritGroup(path string) error {
	gid, err := groupOf(filepath.Dir(path))
	if err != nil {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Gid) == gid {
		return nil
	}
	if err := os.Lchown(path, -1, gid); err != nil {
		return fmt.Errorf("give %s the group of its directory: %w", path, err)
	}
	return nil
}

// SetGroupFrom gives the open file f the group of dir, the directory it
// is about to be renamed into, if it has another.
func SetGroupFrom(f *os.File, dir string) error {
	gid, err := groupOf(dir)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Gid) == gid {
		return nil
	}
	if err := f.Chown(-1, gid); err != nil {
		return fmt.Errorf("give %s the group of %s: %w", f.Name(), dir, err)
	}
	return nil
}

func groupOf(dir string) (int, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no owner information", dir)
	}
	return int(st.Gid), nil
}

// CreateNew creates the file path, which must not exist, for writing,
// with mode FileMode (less the umask), not following a symlink in its
// last component. It is os.OpenFile with O_CREATE|O_EXCL|O_NOFOLLOW, minus
// what os.OpenFile adds on Linux for every file it opens: the attempt to
// register a regular file with the runtime's poller (two fcntl calls to
// set O_NONBLOCK, an epoll_ctl that fails with EPERM, two more to clear
// it). A pod start creates half a dozen files of the pod directory.
func CreateNew(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, uint32(FileMode))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
