package pod

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/timeline"
)

// ErrStage1Unavailable says, wrapped in the error of a Stage1GC function,
// that the pod's stage1 gc could not run at all: the stage1 is missing
// (its rendered tree is gone and cannot be rendered again) or fails the
// checks that come before it is executed. GC and Remove then keep the pod
// as it is, for a later attempt, instead of removing it without its
// stage1 gc, which would leave what the stage1 set up outside the pod
// directory (network interfaces, namespaces, cgroups) for no one to clean.
var ErrStage1Unavailable = errors.New("the pod's stage1 is unavailable")

// GCOptions configure GC.
type GCOptions struct {
	// GracePeriod is how long an exited pod stays in exited-garbage/
	// after it was marked, so that its status can still be read, before
	// it is removed. Zero removes it in the same GC.
	GracePeriod time.Duration
	// ExpirePrepared is how long a prepared pod may wait to be run
	// before GC discards it; zero keeps prepared pods forever.
	ExpirePrepared time.Duration
	// Stage1GC runs the stage1 gc entrypoint of a pod that ran, before its
	// mounts are undone and its directory removed. It is called at most
	// once per pod, with the pod's lock held, unless it or the steps after
	// it fail, in which case a later GC calls it again: it must be
	// idempotent. A failure is reported, but the pod is removed anyway,
	// unless the error wraps ErrStage1Unavailable: then the pod is kept.
	// Nil skips it.
	Stage1GC func(ctx context.Context, p *Pod) error
	// Unmount undoes every mount under a pod directory before it is
	// removed. Nil means mountplan.UnmountPod, which unmounts the rootfs
	// mounts stage0 makes without reading the mount table; mounts it
	// misses are found, by the deletion that follows, and undone with
	// mountplan.UnmountAll.
	Unmount func(ctx context.Context, podPath string) error
	// Log receives debug messages about pods skipped or kept. Nil
	// discards them.
	Log *slog.Logger
}

// GCReport lists what GC did, by pod UUID.
type GCReport struct {
	// Marked are exited pods moved to exited-garbage/.
	Marked []string
	// Discarded are aborted-prepare and expired prepared pods moved to
	// garbage/.
	Discarded []string
	// Removed are pods whose directories were deleted.
	Removed []string
	// Pending are pods in exited-garbage/ within the grace period.
	Pending []string
}

// RemoveOption configures Remove.
type RemoveOption func(*sweeper)

// WithStage1GC sets the function that runs the stage1 gc entrypoint of a
// pod that ran (see GCOptions.Stage1GC).
func WithStage1GC(fn func(ctx context.Context, p *Pod) error) RemoveOption {
	return func(s *sweeper) { s.stage1GC = fn }
}

// WithUnmount replaces mountplan.UnmountPod as the function that undoes
// the mounts under a pod directory.
func WithUnmount(fn func(ctx context.Context, podPath string) error) RemoveOption {
	return func(s *sweeper) { s.unmount = fn }
}

// sweeper removes pods.
type sweeper struct {
	stage1GC func(ctx context.Context, p *Pod) error
	unmount  func(ctx context.Context, podPath string) error
	log      *slog.Logger
}

func newSweeper(stage1GC func(context.Context, *Pod) error, unmount func(context.Context, string) error, log *slog.Logger) *sweeper {
	s := &sweeper{stage1GC: stage1GC, unmount: unmount, log: log}
	if s.unmount == nil {
		s.unmount = mountplan.UnmountPod
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s
}

// lostRace reports whether err only says that another process got to the
// pod first: it is locked, gone, or in another state.
func lostRace(err error) bool {
	var se *stateError
	return errors.Is(err, lock.ErrLocked) || errors.Is(err, errdefs.ErrNotFound) || errors.As(err, &se)
}

// Remove deletes a pod that is not alive: exited, aborted, or already
// marked as garbage. A pod this Pod holds the lock of may also be in
// embryo/, prepare/ or run/ (stage0 giving up on its own pod). Running,
// preparing and prepared pods are refused with
// errdefs.ErrFailedPrecondition. It costs the same whatever the number of
// other pods.
//
// An exited pod is first marked (moved to exited-garbage/), then, as in
// GC, its stage1 gc runs (WithStage1GC), its mounts are undone
// (WithUnmount), and it is moved to garbage/ and deleted. If the stage1 gc
// fails the pod is removed anyway and the error returned, saying so;
// if it could not run (ErrStage1Unavailable) the pod is kept, marked, and
// the error says so.
func Remove(ctx context.Context, p *Pod, opts ...RemoveOption) error {
	s := newSweeper(nil, nil, nil)
	for _, o := range opts {
		o(s)
	}
	held := p.lk != nil
	if !held {
		if err := p.Refresh(ctx); err != nil {
			return fmt.Errorf("remove pod %s: %w", p.UUID, err)
		}
		switch p.State {
		case Exited, AbortedPrepare, ExitedGarbage, Garbage:
		default:
			return &stateError{op: "remove", uuid: p.UUID, state: p.State}
		}
		if err := p.TryLock(ctx); err != nil {
			return fmt.Errorf("remove pod %s: %w", p.UUID, err)
		}
		if p.dir == dirPrepared { // it moved there before we locked it
			_ = p.Unlock()
			return &stateError{op: "remove", uuid: p.UUID, state: Prepared}
		}
		timeline.FromContext(ctx).Mark("pod-locked")
	} else if p.dir == dirPrepared {
		return &stateError{op: "remove", uuid: p.UUID, state: Prepared}
	}
	stage1Err, err := s.destroy(ctx, p)
	if err != nil {
		if !held {
			_ = p.Unlock()
		}
		return fmt.Errorf("remove pod %s: %w", p.UUID, err)
	}
	if stage1Err != nil {
		return fmt.Errorf("remove pod %s: removed, but its stage1 gc failed: %w", p.UUID, stage1Err)
	}
	return nil
}

// destroy removes the pod, whose lock p holds, from any state directory
// but prepared/. An exited pod is marked first; one in exited-garbage/
// gets its stage1 gc, then goes to garbage/; mounts are undone before the
// directory is deleted. On success the lock is released; on error p still
// holds it. The stage1 gc error is returned apart: it does not stop the
// removal, unless it is ErrStage1Unavailable.
func (s *sweeper) destroy(ctx context.Context, p *Pod) (stage1Err, err error) {
	tl := timeline.FromContext(ctx)
	if p.dir == dirRun {
		if err := p.ToExitedGarbage(ctx); err != nil {
			return nil, err
		}
		tl.Mark("pod-marked-exited-garbage")
	}
	if p.dir == dirExitedGarbage && s.stage1GC != nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		stage1Err = s.stage1GC(ctx, p)
		tl.Mark("stage1-gc-done")
		if errors.Is(stage1Err, ErrStage1Unavailable) {
			return nil, fmt.Errorf("kept the pod for a later gc: %w", stage1Err)
		}
		if stage1Err != nil {
			s.log.DebugContext(ctx, "stage1 gc failed, removing the pod anyway", "pod", p.UUID, "err", stage1Err)
		}
	}
	if err := s.unmount(ctx, p.Path); err != nil {
		return stage1Err, fmt.Errorf("unmount under pod directory: %w", err)
	}
	tl.Mark("pod-unmounted")
	if p.dir != dirGarbage {
		if err := p.ToGarbage(ctx); err != nil {
			return stage1Err, err
		}
		tl.Mark("pod-marked-garbage")
	}
	// Deleting through a mount could delete host data (a bind-mounted
	// volume): RemoveTree stops at one. Only then is the whole mount
	// table read, so removing a pod costs the same however many other
	// pods, each with its mounts, the host has.
	err = mountplan.RemoveTree(p.Path)
	if errors.Is(err, mountplan.ErrMountInside) {
		s.log.DebugContext(ctx, "unknown mount in the pod directory, unmounting all", "pod", p.UUID, "err", err)
		if err := mountplan.UnmountAll(ctx, p.Path); err != nil {
			return stage1Err, fmt.Errorf("unmount under pod directory: %w", err)
		}
		left, lerr := mountplan.MountPointsUnder(ctx, p.Path)
		if lerr != nil {
			return stage1Err, lerr
		}
		if len(left) > 0 {
			return stage1Err, errdefs.FailedPrecondition("%d mounts remain under %s (%s), not deleting it", len(left), p.Path, strings.Join(left, ", "))
		}
		err = mountplan.RemoveTree(p.Path)
	}
	if err != nil {
		return stage1Err, fmt.Errorf("delete pod directory: %w", err)
	}
	tl.Mark("pod-deleted")
	return stage1Err, p.Unlock()
}

// GC garbage-collects the pods of dataDir, in two phases.
//
// Mark: exited pods (in run/, unlocked) are moved to exited-garbage/;
// aborted prepares (in embryo/ or prepare/, unlocked) and prepared pods
// older than opts.ExpirePrepared are moved to garbage/.
//
// Sweep: pods in exited-garbage/ marked more than opts.GracePeriod ago get
// their stage1 gc (opts.Stage1GC) and move to garbage/; pods in garbage/
// have their mounts undone (opts.Unmount) and are deleted.
//
// Each step takes the pod's lock first, so several GCs may run at once,
// in one or several processes: a pod another one is handling is skipped.
// Failures on one pod do not stop the others; they are joined in the
// returned error, and the report says what was done.
func GC(ctx context.Context, dataDir string, opts GCOptions) (GCReport, error) {
	var rep GCReport
	s := newSweeper(opts.Stage1GC, opts.Unmount, opts.Log)
	dataDir, err := absDataDir(dataDir)
	if err != nil {
		return rep, err
	}
	var errs []error
	fail := func(p *Pod, what string, err error) {
		if lostRace(err) {
			s.log.DebugContext(ctx, "gc skips pod", "pod", p.UUID, "step", what, "reason", err)
			return
		}
		errs = append(errs, fmt.Errorf("gc: %s pod %s: %w", what, p.UUID, err))
	}

	pods, err := List(ctx, dataDir)
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	for _, p := range pods {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
		switch p.State {
		case Exited:
			if err := p.ToExitedGarbage(ctx); err != nil {
				fail(p, "mark", err)
			} else {
				rep.Marked = append(rep.Marked, p.UUID)
			}
		case AbortedPrepare:
			if err := p.ToGarbage(ctx); err != nil {
				fail(p, "discard", err)
			} else {
				rep.Discarded = append(rep.Discarded, p.UUID)
			}
		case Prepared:
			if opts.ExpirePrepared <= 0 {
				continue
			}
			fi, err := os.Lstat(p.Path) //nolint:gosec // G703: a path in the pod directory
			if err != nil {
				fail(p, "expire", classifyNotExist(err))
				continue
			}
			if time.Since(fi.ModTime()) < opts.ExpirePrepared {
				continue
			}
			if err := p.ToGarbage(ctx); err != nil {
				fail(p, "expire", err)
			} else {
				rep.Discarded = append(rep.Discarded, p.UUID)
			}
		}
	}
	if err := s.sweepStaging(ctx, dataDir); err != nil {
		errs = append(errs, err)
	}

	pods, err = List(ctx, dataDir)
	if err != nil {
		return rep, errors.Join(append(errs, fmt.Errorf("gc: %w", err))...)
	}
	for _, p := range pods {
		if err := ctx.Err(); err != nil {
			return rep, errors.Join(append(errs, fmt.Errorf("gc: %w", err))...)
		}
		switch p.State {
		case ExitedGarbage:
			marked, err := p.GCMarked(ctx)
			if err != nil {
				fail(p, "sweep", err)
				continue
			}
			if time.Since(marked) < opts.GracePeriod {
				rep.Pending = append(rep.Pending, p.UUID)
				continue
			}
		case Garbage:
		default:
			continue
		}
		if err := p.TryLock(ctx); err != nil {
			fail(p, "sweep", err)
			continue
		}
		if p.dir != dirExitedGarbage && p.dir != dirGarbage {
			_ = p.Unlock()
			continue
		}
		stage1Err, err := s.destroy(ctx, p)
		if err != nil {
			_ = p.Unlock()
			fail(p, "sweep", err)
			continue
		}
		rep.Removed = append(rep.Removed, p.UUID)
		if stage1Err != nil {
			errs = append(errs, fmt.Errorf("gc: stage1 gc of pod %s (removed anyway): %w", p.UUID, stage1Err))
		}
	}
	return rep, errors.Join(errs...)
}

// sweepStaging removes what a NewPod that crashed left in embryo/: staging
// directories older than stagingMaxAge that nobody holds the lock of.
func (s *sweeper) sweepStaging(ctx context.Context, dataDir string) error {
	embryo := stateDirPath(dataDir, dirEmbryo)
	names, err := readNames(embryo)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	var errs []error
	for _, name := range names {
		if !strings.HasPrefix(name, stagingPrefix) {
			continue
		}
		path := filepath.Join(embryo, name)
		fi, err := os.Lstat(path)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < stagingMaxAge {
			continue
		}
		l, err := lock.TryExclusiveLock(path, lock.Dir)
		if err != nil {
			continue // being created, or gone
		}
		s.log.DebugContext(ctx, "gc removes an abandoned pod creation", "path", path)
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("gc: remove abandoned pod creation %s: %w", name, err))
		}
		_ = l.Close()
	}
	return errors.Join(errs...)
}
