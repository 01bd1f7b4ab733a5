package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/stage1"
	"github.com/nosecone/nscn/store/tree"
)

// Defaults of gc's flags, as rkt has them.
const (
	defaultGCGracePeriod    = 30 * time.Minute
	defaultGCExpirePrepared = 24 * time.Hour
)

func gcCommand() *cli.Command {
	return &cli.Command{
		Name:         "gc",
		Usage:        "garbage-collect exited and abandoned pods",
		OnUsageError: onPodUsageError,
		Description: `Collects pods in two phases, as rkt does.

Mark: exited pods are moved to exited-garbage, where "nscn status" still reads
them; aborted prepares (the nscn creating them died) and prepared pods older than
--expire-prepared are moved to garbage.

Sweep: pods marked more than --grace-period ago get the gc entrypoint of their
stage1 (coreos.com/rkt/stage1/gc, once per pod; skipped for pods that have no
stage1, such as aborted prepares), then everything mounted under the pod directory
is unmounted and the directory is deleted. --mark-only stops after the mark phase.

gc never touches a running pod or one another nscn is working on: every step takes
the pod's lock first, so several gc, list or status commands may run at once. What
was collected is reported on stderr; stdout stays empty. Failures on one pod do not
stop the others; gc then exits 254. Run it periodically, e.g. from a systemd timer.`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "grace-period", Value: defaultGCGracePeriod, Usage: "how long exited pods stay marked before they are removed"},
			&cli.DurationFlag{Name: "expire-prepared", Value: defaultGCExpirePrepared, Usage: "remove prepared pods nobody ran for this long (0: never)"},
			&cli.BoolFlag{Name: "mark-only", Usage: "only move exited and abandoned pods to the garbage; delete nothing"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() != 0 {
				return usageErrorf("gc: no arguments expected, got %q", c.Args().First())
			}
			grace, expire := c.Duration("grace-period"), c.Duration("expire-prepared")
			if grace < 0 || expire < 0 {
				return usageErrorf("gc: --grace-period and --expire-prepared must not be negative")
			}
			var rep pod.GCReport
			var err error
			if c.Bool("mark-only") {
				rep, err = markPods(c.Context, g, expire)
			} else {
				rep, err = pod.GC(c.Context, g.Dir, pod.GCOptions{
					GracePeriod:    grace,
					ExpirePrepared: expire,
					Stage1GC:       podStage1GC(g),
					Unmount:        mountplan.UnmountPod,
					Log:            g.Log,
				})
			}
			for _, id := range rep.Marked {
				_, _ = fmt.Fprintf(g.Stderr, "marked exited pod %s as garbage\n", id)
			}
			for _, id := range rep.Discarded {
				_, _ = fmt.Fprintf(g.Stderr, "discarded pod %s (aborted or expired prepare)\n", id)
			}
			for _, id := range rep.Pending {
				_, _ = fmt.Fprintf(g.Stderr, "kept pod %s until its grace period of %s ends\n", id, grace)
			}
			for _, id := range rep.Removed {
				_, _ = fmt.Fprintf(g.Stderr, "removed pod %s\n", id)
			}
			return err
		},
	}
}

// markPods is the mark phase of pod.GC alone (gc --mark-only): it moves
// exited pods to exited-garbage/, and aborted prepares and prepared pods
// older than expirePrepared (zero: never) to garbage/. A pod another
// process got to first is skipped.
func markPods(ctx context.Context, g *Globals, expirePrepared time.Duration) (pod.GCReport, error) {
	var rep pod.GCReport
	pods, err := pod.List(ctx, g.Dir)
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	var errs []error
	for _, p := range pods {
		var err error
		switch p.State {
		case pod.Exited:
			if err = p.ToExitedGarbage(ctx); err == nil {
				rep.Marked = append(rep.Marked, p.UUID)
			}
		case pod.AbortedPrepare:
			if err = p.ToGarbage(ctx); err == nil {
				rep.Discarded = append(rep.Discarded, p.UUID)
			}
		case pod.Prepared:
			if expirePrepared <= 0 {
				continue
			}
			// ToPrepared records the time in the directory's mtime.
			fi, serr := os.Lstat(p.Path)
			if serr != nil || time.Since(fi.ModTime()) < expirePrepared {
				continue
			}
			if err = p.ToGarbage(ctx); err == nil {
				rep.Discarded = append(rep.Discarded, p.UUID)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, lock.ErrLocked), errors.Is(err, errdefs.ErrNotFound), errors.Is(err, errdefs.ErrFailedPrecondition):
			g.Log.Debug("gc skips pod", "pod", p.UUID, "reason", err)
		default:
			errs = append(errs, fmt.Errorf("gc: mark pod %s: %w", p.UUID, err))
		}
	}
	return rep, errors.Join(errs...)
}

// podStage1GC returns the pod.GC and pod.Remove hook that runs the gc
// entrypoint of a pod's stage1 ([--debug] [--local-config=DIR] UUID, the
// flag from interface version 5), in the pod directory, from the stage1's
// tree in the store (stage1.OpenPod), never from the pod's own copy. A pod
// without a stage1 manifest (it was abandoned before its stage1 was
// chosen) or whose stage1 has no gc entrypoint has nothing to collect. A
// stage1 that cannot be run at all (its tree is gone for good, or fails
// the checks before exec) is pod.ErrStage1Unavailable: the pod is kept for
// a later gc rather than removed without its stage1 gc.
//
// First, it unregisters the pod from the metadata service run registered it
// with, if any.
func podStage1GC(g *Globals) func(ctx context.Context, p *pod.Pod) error {
	return func(ctx context.Context, p *pod.Pod) error {
		unregisterPod(ctx, g, p)
		if _, err := os.Lstat(filepath.Join(p.Path, stage1abi.Stage1ManifestRel)); errors.Is(err, fs.ErrNotExist) {
			g.Log.Debug("pod has no stage1, skipping the stage1 gc", "pod", p.UUID)
			return nil
		}
		eps, err := stage1.ReadPodEntrypoints(p.Path)
		if err != nil {
			return fmt.Errorf("stage1 gc of pod %s: %w", p.UUID, err)
		}
		if eps.GC == "" {
			g.Log.Debug("the pod's stage1 has no gc entrypoint", "pod", p.UUID)
			return nil
		}
		unavailable := func(err error) error {
			return errdefs.With(pod.ErrStage1Unavailable, fmt.Errorf("its stage1 gc cannot run: %w", err))
		}
		s, err := openStore(ctx, g)
		if err != nil {
			return unavailable(err)
		}
		s1, err := stage1.OpenPod(ctx, s, p.Path)
		if err != nil {
			return unavailable(err)
		}
		if _, err := s1.Path(s1.GC); err != nil {
			return unavailable(err)
		}
		if err := remountStage1(ctx, g, p, s1.Tree); err != nil {
			return fmt.Errorf("stage1 gc of pod %s: %w", p.UUID, err)
		}
		var args []string
		if g.Debug {
			args = append(args, "--"+stage1abi.FlagDebug)
		}
		if eps.Version >= stage1abi.InterfaceVersionLocalConfig {
			args = append(args, "--"+stage1abi.FlagGCLocalConfig+"="+g.LocalConfig)
		}
		args = append(args, p.UUID)
		g.Log.Debug("running the stage1 gc", "pod", p.UUID, "entrypoint", eps.GC, "tree", s1.Tree.Key, "args", args)
		st, err := s1.Invoke(ctx, s1.GC, args, stage1.Stdio{Out: g.Stderr, Err: g.Stderr}, stage1Env(g))
		if err != nil {
			return fmt.Errorf("stage1 gc of pod %s: %w", p.UUID, err)
		}
		if st != 0 {
			return fmt.Errorf("stage1 gc of pod %s: the entrypoint exited with status %d", p.UUID, st)
		}
		return nil
	}
}

// remountStage1 mounts the stage1 rootfs of a pod that ran again when its
// overlay is gone (the host rebooted since), as prepare did: the pod's
// upper and work directories over the stage1's rendered tree. The gc
// entrypoint itself is executed from the tree and needs no mount, but it
// works in the pod directory, and finds there, under stage1/rootfs, what
// the pod left in its overlay (empty volumes, say). The unmount step of gc
// and rm undoes the mount. A pod whose stage1 was copied, whose overlay is
// still mounted, or that has no overlay directories, is left alone: its
// stage1 rootfs is not empty.
func remountStage1(ctx context.Context, g *Globals, p *pod.Pod, t *tree.Tree) error {
	target := filepath.Join(p.Path, stage1abi.Stage1RootfsRel)
	if names, err := readDirNames(target); err != nil || len(names) > 0 {
		return nil //nolint:nilerr // there, or unreadable: the stage1 gc reports what it misses
	}
	upper, work := mountplan.Stage1OverlayDirs(p.Path)
	if fi, err := os.Lstat(upper); err != nil || !fi.IsDir() {
		return nil //nolint:nilerr // no overlay to mount again: the stage1 gc gets an empty rootfs
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount the stage1 rootfs again: %w", err)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("mount the stage1 rootfs again: %w", err)
	}
	g.Log.Debug("mounting the stage1 rootfs again for its gc", "pod", p.UUID, "tree", t.Key)
	m := mountplan.OverlayMount(t.Rootfs, upper, work, target)
	if ids, err := p.PrivateUsers(); err == nil && !ids.IsZero() {
		m = m.WithMetaCopy() // as prepare mounted it (mountplan.Config.MetaCopy)
	}
	if err := mountplan.NewLogging(mountplan.Kernel{}, g.Log).Mount(ctx, m); err != nil {
		return fmt.Errorf("mount the stage1 rootfs again: %w", err)
	}
	return nil
}

// readDirNames lists a directory; a missing one is empty.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir) //nolint:gosec // G304: a directory of the pod directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	return names, err
}
