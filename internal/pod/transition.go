package pod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/nosecone/nscn/internal/datadir"
	"github.com/nosecone/nscn/internal/errdefs"
)

// move describes one transition between state directories.
type move struct {
	op   string   // for messages
	from []string // state directories the pod may be in
	to   string
	// held: the Pod must already hold the lock.
	held bool
	// keep: keep a lock the transition took itself.
	keep bool
	// release: release the lock on success, even if it was held before.
	release bool
	// touch: set the pod directory's modification time to now, which
	// records when the pod entered its new state (prepared, gc marked).
	touch bool
	// volatile: do not fsync the state directories. Only for moves that a
	// power loss may undo without changing what happens to the pod: see
	// "Durability" in Documentation/pod-lifecycle.md.
	volatile bool
}

// ToPreparing moves a new pod from embryo/ to prepare/, where stage0
// renders its images. The Pod must hold the lock (it does after NewPod).
// The move is not made durable: after a power loss a pod in embryo/ and
// one in prepare/ are both an aborted prepare, which gc removes.
func (p *Pod) ToPreparing(ctx context.Context) error {
	return p.transition(ctx, move{op: "start preparing", from: []string{dirEmbryo}, to: dirPrepare, held: true, volatile: true})
}

// ToPrepared moves a prepared pod from prepare/ to prepared/ and releases
// its lock. The Pod must hold the lock.
func (p *Pod) ToPrepared(ctx context.Context) error {
	return p.transition(ctx, move{op: "finish preparing", from: []string{dirPrepare}, to: dirPrepared, held: true, release: true, touch: true})
}

// ToRun moves the pod to run/ and returns holding its lock, which stage0
// then hands to stage1 (KeepLockOnExec). A Pod holding the lock may come
// from prepare/ (nscn run) or prepared/; one that does not takes the lock
// of a prepared pod (nscn run-prepared), and fails with lock.ErrLocked if
// another process is starting it.
//
// The move out of prepare/ (nscn run) is not made durable: after a power
// loss the pod is dead either way, an aborted prepare or an exited pod,
// and gc removes both. The move out of prepared/ is, so that a pod that
// ran is never offered to run-prepared again.
func (p *Pod) ToRun(ctx context.Context) error {
	m := move{op: "run", from: []string{dirPrepared}, to: dirRun, keep: true}
	if p.lk != nil {
		m.from = []string{dirPrepare, dirPrepared}
		m.volatile = p.dir == dirPrepare
	}
	return p.transition(ctx, m)
}

// ToExitedGarbage marks an exited pod for garbage collection: it moves it
// from run/ to exited-garbage/, recording the time in the directory's
// modification time, where GC's grace period starts. A running pod fails
// with lock.ErrLocked.
func (p *Pod) ToExitedGarbage(ctx context.Context) error {
	return p.transition(ctx, move{op: "mark exited", from: []string{dirRun}, to: dirExitedGarbage, touch: true})
}

// ToGarbage moves a pod that never ran, or whose stage1 gc is done, to
// garbage/, to be removed: an aborted or abandoned embryo or preparing pod
// (unlocked, or locked by this Pod), a prepared pod, or an exited-garbage
// pod. Exited pods go through ToExitedGarbage first, so that their stage1
// gc runs.
func (p *Pod) ToGarbage(ctx context.Context) error {
	return p.transition(ctx, move{
		op: "discard", from: []string{dirEmbryo, dirPrepare, dirPrepared, dirExitedGarbage}, to: dirGarbage, touch: true,
	})
}

func (p *Pod) transition(ctx context.Context, m move) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s pod %s: %w", m.op, p.UUID, err)
	}
	took := false
	if p.lk == nil {
		if m.held {
			return errdefs.FailedPrecondition("%s pod %s: its lock is not held by this process", m.op, p.UUID)
		}
		if err := p.TryLock(ctx); err != nil {
			return fmt.Errorf("%s pod %s: %w", m.op, p.UUID, err)
		}
		took = true
	}
	defer func() {
		if (took && (err != nil || !m.keep)) || (err == nil && m.release) {
			if uerr := p.Unlock(); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}
	}()
	for range maxRelocations {
		if !slices.Contains(m.from, p.dir) {
			return &stateError{op: m.op, uuid: p.UUID, state: deriveState(p.dir, true)}
		}
		err := p.rename(m.to, m.touch, !m.volatile)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s pod %s: %w", m.op, p.UUID, err)
		}
		// Only the lock holder moves a pod, so a process ignoring the
		// protocol moved it under us: find it again. Our lock follows the
		// directory.
		d, lerr := locate(p.dataDir, p.UUID)
		if lerr != nil {
			return fmt.Errorf("%s pod %s: %w", m.op, p.UUID, lerr)
		}
		p.setDir(d)
		if d == m.to {
			return nil
		}
	}
	return errdefs.Unavailable("%s pod %s: it kept moving", m.op, p.UUID)
}

// rename moves the pod directory to the state directory to and, if
// durable, makes the move durable.
func (p *Pod) rename(to string, touch, durable bool) error {
	from := p.dir
	dst := podPath(p.dataDir, to, p.UUID)
	// A data directory from before a state directory existed lacks it.
	if err := datadir.MkdirAll(stateDirPath(p.dataDir, to), dirMode); err != nil {
		return fmt.Errorf("move to %s: %w", to, err)
	}
	if err := renameNoReplace(p.Path, dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errdefs.With(errdefs.ErrAlreadyExists, fmt.Errorf("move to %s: %w", to, err))
		}
		return fmt.Errorf("move to %s: %w", to, err)
	}
	p.setDir(to)
	p.State = deriveState(to, p.lk != nil)
	if touch {
		now := time.Now()
		if err := os.Chtimes(dst, now, now); err != nil {
			return fmt.Errorf("record time of move to %s: %w", to, err)
		}
	}
	if !durable {
		return nil
	}
	if err := syncDir(stateDirPath(p.dataDir, from)); err != nil {
		return fmt.Errorf("move to %s: %w", to, err)
	}
	if err := syncDir(stateDirPath(p.dataDir, to)); err != nil {
		return fmt.Errorf("move to %s: %w", to, err)
	}
	return nil
}
