package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Kind says what a lock path names.
type Kind int

const (
	// Dir is an existing directory. The path must not be a symlink.
	Dir Kind = iota + 1
	// RegularFile is a regular file, created with mode 0600 when missing.
	// The path must not be a symlink.
	RegularFile
)

func (k Kind) String() string {
	switch k {
	case Dir:
		return "directory"
	case RegularFile:
		return "regular file"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// ErrLocked is returned, wrapped, when a lock is held through another open
// file description. It is of the errdefs.ErrUnavailable class.
var ErrLocked = errdefs.With(errdefs.ErrUnavailable, errors.New("already locked"))

// Polling bounds of the waiting calls when their context can be canceled:
// flock(2) itself cannot be interrupted by a context.
const (
	minPoll = time.Millisecond
	maxPoll = 50 * time.Millisecond
)

// mode is the flock operation a call asks for.
type mode int

const (
	shared mode = iota + 1
	exclusive
)

func (m mode) String() string {
	if m == shared {
		return "shared"
	}
	return "exclusive"
}

// File is an open file or directory that may hold a flock lock. The zero
// value is not usable; get one from TryExclusiveLock, ExclusiveLock,
// TrySharedLock, SharedLock, Open or FromFd. A File is not safe for
// concurrent use by several goroutines.
type File struct {
	path string
	f    *os.File
}

// Open opens path without locking it.
func Open(path string, kind Kind) (*File, error) {
	f, err := open(path, kind)
	if err != nil {
		return nil, err
	}
	return &File{path: path, f: f}, nil
}

// FromFd adopts an inherited descriptor, such as the one named by
// RKT_LOCK_FD, as a File. The descriptor is not duplicated: Close closes
// it. name is only used in messages. FromFd does not tell whether the
// descriptor holds a lock; TryExclusiveLock on the result succeeds if it
// does (converting one's own lock never conflicts) or if nobody holds one.
func FromFd(fd int, name string) (*File, error) {
	if fd < 0 {
		return nil, errdefs.InvalidArgument("adopt lock descriptor %d for %s: negative descriptor", fd, name)
	}
	if err := checkFd(fd); err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("adopt lock descriptor %d for %s: %w", fd, name, err))
	}
	return &File{path: name, f: os.NewFile(uintptr(fd), name)}, nil
}

// TryExclusiveLock opens path and takes an exclusive lock on it without
// waiting. A lock held elsewhere gives ErrLocked.
func TryExclusiveLock(path string, kind Kind) (*File, error) {
	return openAndLock(context.Background(), path, kind, exclusive, false)
}

// ExclusiveLock opens path and waits for an exclusive lock on it until ctx
// is done.
func ExclusiveLock(ctx context.Context, path string, kind Kind) (*File, error) {
	return openAndLock(ctx, path, kind, exclusive, true)
}

// TrySharedLock opens path and takes a shared lock on it without waiting.
// An exclusive lock held elsewhere gives ErrLocked.
func TrySharedLock(path string, kind Kind) (*File, error) {
	return openAndLock(context.Background(), path, kind, shared, false)
}

// SharedLock opens path and waits for a shared lock on it until ctx is
// done.
func SharedLock(ctx context.Context, path string, kind Kind) (*File, error) {
	return openAndLock(ctx, path, kind, shared, true)
}

func openAndLock(ctx context.Context, path string, kind Kind, m mode, wait bool) (*File, error) {
	l, err := Open(path, kind)
	if err != nil {
		return nil, err
	}
	if err := l.lock(ctx, m, wait); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

// TryExclusiveLock takes, or converts a shared lock held by l into, an
// exclusive lock without waiting. A conversion is not atomic: flock(2)
// drops the shared lock first, and on ErrLocked l holds no lock at all.
func (l *File) TryExclusiveLock() error { return l.lock(context.Background(), exclusive, false) }

// ExclusiveLock waits for an exclusive lock until ctx is done.
func (l *File) ExclusiveLock(ctx context.Context) error { return l.lock(ctx, exclusive, true) }

// TrySharedLock takes, or converts an exclusive lock held by l into, a
// shared lock without waiting.
func (l *File) TrySharedLock() error { return l.lock(context.Background(), shared, false) }

// SharedLock waits for a shared lock until ctx is done.
func (l *File) SharedLock(ctx context.Context) error { return l.lock(ctx, shared, true) }

func (l *File) lock(ctx context.Context, m mode, wait bool) error {
	if l.f == nil {
		return errdefs.FailedPrecondition("lock %s %s: file is closed", l.path, m)
	}
	fd := int(l.f.Fd())
	if !wait {
		if err := flock(fd, m, false); err != nil {
			return fmt.Errorf("lock %s %s: %w", l.path, m, err)
		}
		return nil
	}
	if ctx.Done() == nil {
		// Nothing can cancel the wait: let the kernel queue us.
		if err := flock(fd, m, true); err != nil {
			return fmt.Errorf("lock %s %s: %w", l.path, m, err)
		}
		return nil
	}
	delay := minPoll
	for {
		err := flock(fd, m, false)
		if !errors.Is(err, ErrLocked) {
			if err != nil {
				return fmt.Errorf("lock %s %s: %w", l.path, m, err)
			}
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for %s lock on %s: %w", m, l.path, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, maxPoll)
	}
}

// Unlock releases the lock held through l, keeping the file open. It
// releases it for every descriptor sharing l's open file description,
// including ones handed to children.
func (l *File) Unlock() error {
	if l.f == nil {
		return errdefs.FailedPrecondition("unlock %s: file is closed", l.path)
	}
	if err := unlock(int(l.f.Fd())); err != nil {
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	return nil
}

// Close closes l's descriptor. The lock is released unless another
// descriptor (a duplicate, or one inherited by a child) still shares the
// open file description. Closing a closed File does nothing.
func (l *File) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("close lock %s: %w", l.path, err)
	}
	return nil
}

// Fd returns l's descriptor, or -1 when l is closed. It stays owned by l.
func (l *File) Fd() int {
	if l.f == nil {
		return -1
	}
	return int(l.f.Fd())
}

// Path returns the path l was opened with.
func (l *File) Path() string { return l.path }

// Stat describes the file l has open, which may since have been renamed or
// removed; compare it with os.SameFile to check that a path still names it.
func (l *File) Stat() (fs.FileInfo, error) {
	if l.f == nil {
		return nil, errdefs.FailedPrecondition("stat lock %s: file is closed", l.path)
	}
	fi, err := l.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat lock %s: %w", l.path, err)
	}
	return fi, nil
}

// KeepOnExec clears close-on-exec on l's descriptor, so that an execve(2)
// of this process (syscall.Exec) passes it, and the lock, to the new
// program under the same number (Fd). Every child this process starts
// afterwards inherits it too, so call it just before the exec.
func (l *File) KeepOnExec() error {
	if l.f == nil {
		return errdefs.FailedPrecondition("keep lock %s on exec: file is closed", l.path)
	}
	if err := setCloseOnExec(int(l.f.Fd()), false); err != nil {
		return fmt.Errorf("keep lock %s on exec: %w", l.path, err)
	}
	return nil
}

// DupTo duplicates l's descriptor to the number fd, without close-on-exec,
// closing whatever fd was. The duplicate shares the lock and is not owned
// by l: it stays open after l.Close. If fd is l's own descriptor, DupTo is
// KeepOnExec.
func (l *File) DupTo(fd int) error {
	if l.f == nil {
		return errdefs.FailedPrecondition("duplicate lock %s to descriptor %d: file is closed", l.path, fd)
	}
	if fd < 0 {
		return errdefs.InvalidArgument("duplicate lock %s to descriptor %d: negative descriptor", l.path, fd)
	}
	if fd == int(l.f.Fd()) {
		return l.KeepOnExec()
	}
	if err := dupTo(int(l.f.Fd()), fd); err != nil {
		return fmt.Errorf("duplicate lock %s to descriptor %d: %w", l.path, fd, err)
	}
	return nil
}

// Dup returns a close-on-exec duplicate of l's descriptor, sharing the
// lock, for exec.Cmd.ExtraFiles: the child gets it as descriptor 3+i. The
// caller closes it once the child has started.
func (l *File) Dup() (*os.File, error) {
	if l.f == nil {
		return nil, errdefs.FailedPrecondition("duplicate lock %s: file is closed", l.path)
	}
	fd, err := dupCloseOnExec(int(l.f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("duplicate lock %s: %w", l.path, err)
	}
	return os.NewFile(uintptr(fd), l.path), nil
}

// classifyOpen attaches an errdefs class to an open error.
func classifyOpen(path string, kind Kind, err error) error {
	err = fmt.Errorf("open %s %s for locking: %w", kind, path, err)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errdefs.With(errdefs.ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return errdefs.With(errdefs.ErrPermissionDenied, err)
	}
	return errdefs.With(errdefs.ErrInvalidArgument, err)
}

// HeldExclusively reports whether an exclusive lock is held on path,
// through any open file description, including one of the caller's. It
// tries a shared lock from a fresh open and drops it at once, so probes
// never conflict with each other; they may make a concurrent
// TryExclusiveLock fail for a few microseconds. It costs three system
// calls and does not create a RegularFile that is missing.
func HeldExclusively(path string, kind Kind) (bool, error) {
	held, err := probe(path, kind)
	if err != nil {
		return false, classifyOpen(path, kind, err)
	}
	return held, nil
}
