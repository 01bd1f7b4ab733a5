package pod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/nosecone/nscn/internal/datadir"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

const (
	// dirMode is the mode of the state directories and of pod
	// directories; each also gets the group of the directory it is in
	// (datadir.MkdirAll).
	dirMode = datadir.DirMode
	// stagingPrefix names a pod directory NewPod is still filling, in
	// embryo/. It is locked before it is renamed to its UUID, so that no
	// unlocked embryo is ever visible; a leftover of a crash is removed by
	// GC once older than stagingMaxAge.
	stagingPrefix = ".new-"
	stagingMaxAge = 10 * time.Minute
	// lockRetries bounds the short retries of a non-waiting lock: a probe
	// of another process (lock.HeldExclusively) holds a shared lock for a
	// few microseconds. The delays double from lockRetryDelay.
	lockRetries    = 6
	lockRetryDelay = 100 * time.Microsecond
	// maxRelocations bounds how often one call looks for a pod that moved.
	maxRelocations = 8
	// maxSmallFile bounds the pid, status and created files.
	maxSmallFile = 4 << 10
	// maxManifest bounds the pod manifest.
	maxManifest = 16 << 20
)

// Pod is one pod directory. UUID, Path and State are a snapshot taken when
// the Pod was loaded or last changed by this process; Refresh takes a new
// one. A Pod may hold the pod's lock (NewPod, Lock, ToRun); a Pod is not
// safe for concurrent use by several goroutines.
type Pod struct {
	UUID  string // canonical lowercase form
	Path  string // absolute path of the pod directory
	State State

	dataDir string
	dir     string     // the state directory Path is in
	lk      *lock.File // the pod's lock, while this Pod holds it
}

// stateError reports a pod that is not in a state an operation accepts.
// It is of class errdefs.ErrFailedPrecondition.
type stateError struct {
	op    string
	uuid  string
	state State
}

func (e *stateError) Error() string {
	return fmt.Sprintf("%s pod %s: pod is %s", e.op, e.uuid, e.state)
}

func (e *stateError) Is(target error) bool { return target == errdefs.ErrFailedPrecondition }

func absDataDir(dataDir string) (string, error) {
	if dataDir == "" {
		return "", errdefs.InvalidArgument("data directory is empty")
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("resolve data directory %s: %w", dataDir, err))
	}
	return abs, nil
}

// validUUID reports whether name is a UUID in canonical lowercase form.
func validUUID(name string) bool {
	if len(name) != 36 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// NewPod creates a pod in embryo/ with a new random (version 4) UUID, and
// returns it holding its lock. The directory is created under a temporary
// name, locked, given its CreatedFile, then renamed: other processes never
// see it unlocked. Nothing is fsynced: after a power loss an embryo is an
// aborted prepare, removed by gc, whatever of it survived.
func NewPod(ctx context.Context, dataDir string) (_ *Pod, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create pod: %w", err)
	}
	dataDir, err = absDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	for _, d := range stateDirs {
		if err := datadir.MkdirAll(stateDirPath(dataDir, d), dirMode); err != nil {
			return nil, fmt.Errorf("create pod state directory %s: %w", d, err)
		}
	}
	var id string
	for attempt := 0; ; attempt++ {
		u, err := uuid.NewRandom()
		if err != nil {
			return nil, fmt.Errorf("create pod UUID: %w", err)
		}
		id = u.String()
		if _, err := locate(dataDir, id); errors.Is(err, errdefs.ErrNotFound) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("create pod %s: %w", id, err)
		}
		if attempt == 2 {
			return nil, errdefs.AlreadyExists("create pod: UUID %s collides three times", id)
		}
	}
	embryo := stateDirPath(dataDir, dirEmbryo)
	cur := filepath.Join(embryo, stagingPrefix+id)
	if err := os.Mkdir(cur, dirMode); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", id, err)
	}
	var lk *lock.File
	defer func() {
		if err != nil {
			_ = lk.Close()
			_ = os.RemoveAll(cur)
		}
	}()
	if lk, err = lock.TryExclusiveLock(cur, lock.Dir); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", id, err)
	}
	if err := datadir.InheritGroup(cur); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", id, err)
	}
	if err := writeCreated(cur, time.Now()); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", id, err)
	}
	final := podPath(dataDir, dirEmbryo, id)
	if err := renameNoReplace(cur, final); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", id, err)
	}
	return &Pod{UUID: id, Path: final, State: Embryo, dataDir: dataDir, dir: dirEmbryo, lk: lk}, nil
}

func writeCreated(dir string, t time.Time) error {
	name := filepath.Join(dir, stage1abi.CreatedFile)
	f, err := datadir.CreateNew(name)
	if err != nil {
		return fmt.Errorf("write creation time: %w", err)
	}
	err = datadir.SetGroupFrom(f, dir)
	if err == nil {
		_, err = f.WriteString(t.UTC().Format(time.RFC3339Nano) + "\n")
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write creation time: %w", err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir) //nolint:gosec // G304: a path in the pod directory
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// locate finds the state directory holding the pod uuid, scanning them in
// transition order.
func locate(dataDir, uuid string) (string, error) {
	for _, d := range stateDirs {
		fi, err := os.Lstat(podPath(dataDir, d, uuid))
		if err == nil && fi.IsDir() {
			return d, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("look for pod %s: %w", uuid, err)
		}
	}
	return "", errdefs.NotFound("pod %s does not exist", uuid)
}

// load derives the state of the pod uuid, last seen in dir (or anywhere
// when dir is empty).
func load(dataDir, uuid, dir string) (*Pod, error) {
	for range maxRelocations {
		if dir == "" {
			d, err := locate(dataDir, uuid)
			if err != nil {
				return nil, err
			}
			dir = d
		}
		p := &Pod{UUID: uuid, dataDir: dataDir}
		p.setDir(dir)
		locked := false
		if needsProbe(dir) {
			var err error
			locked, err = lock.HeldExclusively(p.Path, lock.Dir)
			if errors.Is(err, errdefs.ErrNotFound) {
				dir = "" // moved meanwhile
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("load pod %s: %w", uuid, err)
			}
		}
		p.State = deriveState(dir, locked)
		return p, nil
	}
	return nil, errdefs.Unavailable("load pod %s: it kept moving", uuid)
}

func (p *Pod) setDir(dir string) {
	p.dir = dir
	p.Path = podPath(p.dataDir, dir, p.UUID)
}

// Refresh derives the pod's state and location again.
func (p *Pod) Refresh(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("refresh pod %s: %w", p.UUID, err)
	}
	if p.lk != nil {
		// Nobody else moves a pod whose lock we hold.
		p.State = deriveState(p.dir, true)
		return nil
	}
	q, err := load(p.dataDir, p.UUID, p.dir)
	if err != nil {
		return err
	}
	p.UUID, p.Path, p.State, p.dir = q.UUID, q.Path, q.State, q.dir
	return nil
}

// Get loads the pod whose UUID is, or starts with, uuidOrPrefix
// (case-insensitive; dashes in a prefix are optional). A full UUID costs
// a few stat calls; a prefix reads the state directories. No match is
// errdefs.ErrNotFound; several matches are errdefs.ErrInvalidArgument.
func Get(ctx context.Context, dataDir, uuidOrPrefix string) (*Pod, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get pod %s: %w", uuidOrPrefix, err)
	}
	dataDir, err := absDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	q := strings.ToLower(uuidOrPrefix)
	if q == "" || len(q) > 36 || strings.Trim(q, "0123456789abcdef-") != "" {
		return nil, errdefs.InvalidArgument("get pod: %q is not a pod UUID or UUID prefix", uuidOrPrefix)
	}
	if validUUID(q) {
		return load(dataDir, q, "")
	}
	key := strings.ReplaceAll(q, "-", "")
	if key == "" {
		return nil, errdefs.InvalidArgument("get pod: %q is not a pod UUID or UUID prefix", uuidOrPrefix)
	}
	matches := make(map[string]string) // uuid → last state directory seen
	for _, d := range stateDirs {
		names, err := readNames(stateDirPath(dataDir, d))
		if err != nil {
			return nil, fmt.Errorf("get pod %s: %w", uuidOrPrefix, err)
		}
		for _, name := range names {
			if validUUID(name) && strings.HasPrefix(strings.ReplaceAll(name, "-", ""), key) {
				matches[name] = d
			}
		}
	}
	switch len(matches) {
	case 0:
		return nil, errdefs.NotFound("no pod matches %q", uuidOrPrefix)
	case 1:
		for id, d := range matches {
			return load(dataDir, id, d)
		}
	}
	ids := make([]string, 0, len(matches))
	for id := range matches {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	const shown = 5
	list := strings.Join(ids[:min(len(ids), shown)], ", ")
	if len(ids) > shown {
		list += ", …"
	}
	return nil, errdefs.InvalidArgument("pod UUID prefix %q is ambiguous: it matches %d pods (%s)", uuidOrPrefix, len(ids), list)
}

// readNames lists a directory without sorting or stat calls; a missing
// directory is empty.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir) //nolint:gosec // G304: a path in the pod directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	defer func() { _ = f.Close() }()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return names, nil
}

// List returns every pod in every state, sorted by UUID. It reads each
// state directory once and probes the lock of each pod whose state
// depends on it (three system calls); everything else about a pod is read
// on demand by its methods. A pod removed during the call is left out.
func List(ctx context.Context, dataDir string) ([]*Pod, error) {
	dataDir, err := absDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	where := make(map[string]string)
	for _, d := range stateDirs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		names, err := readNames(stateDirPath(dataDir, d))
		if err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		for _, name := range names {
			if validUUID(name) {
				where[name] = d // a later directory wins: the pod moved there
			}
		}
	}
	ids := make([]string, 0, len(where))
	for id := range where {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	pods := make([]*Pod, 0, len(ids))
	for i, id := range ids {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("list pods: %w", err)
			}
		}
		p, err := load(dataDir, id, where[id])
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// Lock waits, until ctx is done, for the pod's exclusive lock, following
// the pod if it moves meanwhile, and refreshes State. Locking a pod this
// Pod already holds does nothing.
func (p *Pod) Lock(ctx context.Context) error { return p.acquire(ctx, true) }

// TryLock takes the pod's exclusive lock without waiting for another
// holder (a held lock is an error wrapping lock.ErrLocked), and refreshes
// State.
func (p *Pod) TryLock(ctx context.Context) error { return p.acquire(ctx, false) }

func (p *Pod) acquire(ctx context.Context, wait bool) error {
	if p.lk != nil {
		return nil
	}
	for range maxRelocations {
		if p.dir == "" {
			d, err := locate(p.dataDir, p.UUID)
			if err != nil {
				return err
			}
			p.setDir(d)
		}
		var l *lock.File
		var err error
		if wait {
			l, err = lock.ExclusiveLock(ctx, p.Path, lock.Dir)
		} else {
			l, err = tryLockSoon(ctx, p.Path)
		}
		if errors.Is(err, errdefs.ErrNotFound) {
			p.dir = "" // moved before we opened it
			continue
		}
		if err != nil {
			return fmt.Errorf("lock pod %s: %w", p.UUID, err)
		}
		// The lock is on what we opened; check that it is still the pod
		// directory at p.Path, not one moved or removed before we locked.
		same, err := isAt(l, p.Path)
		if err != nil || !same {
			_ = l.Close()
			if err != nil {
				return fmt.Errorf("lock pod %s: %w", p.UUID, err)
			}
			p.dir = ""
			continue
		}
		p.lk = l
		p.State = deriveState(p.dir, true)
		return nil
	}
	return errdefs.Unavailable("lock pod %s: it kept moving", p.UUID)
}

// tryLockSoon is lock.TryExclusiveLock, retried briefly over probes.
func tryLockSoon(ctx context.Context, path string) (*lock.File, error) {
	delay := lockRetryDelay
	for i := 0; ; i++ {
		l, err := lock.TryExclusiveLock(path, lock.Dir)
		if !errors.Is(err, lock.ErrLocked) || i == lockRetries {
			return l, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay *= 2
	}
}

// isAt reports whether path still names the directory l has open.
func isAt(l *lock.File, path string) (bool, error) {
	held, err := l.Stat()
	if err != nil {
		return false, err
	}
	fi, err := os.Lstat(path) //nolint:gosec // G703: a path in the pod directory
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, fi), nil
}

// Unlock releases the pod's lock if this Pod holds it. State becomes what
// it would be unlocked; another process may lock the pod at once.
func (p *Pod) Unlock() error {
	if p.lk == nil {
		return nil
	}
	err := p.lk.Close()
	p.lk = nil
	p.State = deriveState(p.dir, false)
	if err != nil {
		return fmt.Errorf("unlock pod %s: %w", p.UUID, err)
	}
	return nil
}

// Locked reports whether this Pod holds the pod's lock.
func (p *Pod) Locked() bool { return p.lk != nil }

// LockFd returns the descriptor of the pod's lock, which this Pod must
// hold. It stays owned by the Pod.
func (p *Pod) LockFd() (int, error) {
	if p.lk == nil {
		return -1, errdefs.FailedPrecondition("pod %s: lock not held by this process", p.UUID)
	}
	return p.lk.Fd(), nil
}

// KeepLockOnExec prepares the handoff of the pod's lock to stage1: it
// clears close-on-exec on the lock descriptor and returns its number, for
// stage1abi.EnvLockFD in the environment of the execve(2) of stage1. The
// Pod must hold the lock.
func (p *Pod) KeepLockOnExec() (int, error) {
	if p.lk == nil {
		return -1, errdefs.FailedPrecondition("pod %s: lock not held by this process", p.UUID)
	}
	if err := p.lk.KeepOnExec(); err != nil {
		return -1, fmt.Errorf("hand over lock of pod %s: %w", p.UUID, err)
	}
	return p.lk.Fd(), nil
}

// LockFile returns the pod's lock, or nil if this Pod does not hold it,
// for handoffs KeepLockOnExec does not cover (lock.File.Dup, DupTo).
func (p *Pod) LockFile() *lock.File { return p.lk }
