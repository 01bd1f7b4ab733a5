package tree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

const oNoFollow = unix.O_NOFOLLOW

// errLocked is what lock returns without wait when another holder has the
// lock. It never leaves the package.
var errLocked = errors.New("tree lock held by another process")

// fileLock is an exclusive flock on <dir>/<key>.lock. flock locks belong to
// an open file description, so two Stores in one process exclude each other
// exactly like two processes do.
type fileLock struct {
	f    *os.File
	path string
}

// lock takes the lock of key. With wait it polls until the lock is free or
// ctx is done (flock itself cannot be interrupted by a context); without,
// it returns errLocked at once when the lock is held.
//
// Lock files are deleted by whoever removes the tree while holding the
// lock, so the file we opened may be unlinked by the time we get the lock;
// holding a lock on an unlinked file protects nothing, so we check that the
// path still names the file we locked, and start over if not.
func (s *Store) lock(ctx context.Context, key string, wait bool) (*fileLock, error) {
	p := filepath.Join(s.dir, key+lockSuffix)
	delay := time.Millisecond
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|oNoFollow, 0o600) //nolint:gosec // G304: a path in the store's own directory
		if err != nil {
			return nil, fmt.Errorf("lock tree %s: %w", key, err)
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if !errors.Is(err, unix.EWOULDBLOCK) {
				break
			}
			if !wait {
				_ = f.Close()
				return nil, errLocked
			}
			select {
			case <-ctx.Done():
				_ = f.Close()
				return nil, fmt.Errorf("wait for tree %s lock: %w", key, ctx.Err())
			case <-time.After(delay):
			}
			delay = min(2*delay, 50*time.Millisecond)
		}
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("lock tree %s: %w", key, &os.PathError{Op: "flock", Path: p, Err: err})
		}
		var held, named unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &held); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("lock tree %s: %w", key, err)
		}
		err = unix.Stat(p, &named)
		if err == nil && held.Dev == named.Dev && held.Ino == named.Ino {
			return &fileLock{f: f, path: p}, nil
		}
		_ = f.Close()
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("lock tree %s: %w", key, &os.PathError{Op: "stat", Path: p, Err: err})
		}
	}
}

// release unlocks, first deleting the lock file when removeFile is set
// (the tree is gone; waiters notice the unlink and start over).
func (l *fileLock) release(removeFile bool) {
	if removeFile {
		_ = os.Remove(l.path) //nolint:gosec // G703: a path in the store's own directory
	}
	_ = l.f.Close()
}

// syncFS flushes the filesystem holding dir: one call instead of an fsync
// per extracted file.
func syncFS(dir string) error {
	f, err := os.Open(dir) //nolint:gosec // G304: a path in the store's own directory
	if err != nil {
		return fmt.Errorf("sync filesystem: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync filesystem of %s: %w", dir, err)
	}
	return nil
}

// fdRecord returns the device and inode of fd, a regular file, and what
// the tree hash records of it but its content's digest and xattrs.
func fdRecord(fd int) ([2]uint64, fileRecord, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return [2]uint64{}, fileRecord{}, &os.PathError{Op: "fstat", Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return [2]uint64{}, fileRecord{}, &os.PathError{Op: "fstat", Err: unix.EINVAL}
	}
	rec := fileRecord{size: st.Size, perm: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid}
	return [2]uint64{st.Dev, st.Ino}, rec, nil
}
