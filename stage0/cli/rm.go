package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/pod"
)

func rmCommand() *cli.Command {
	return &cli.Command{
		Name:         "rm",
		Usage:        "remove pods that are not running",
		OnUsageError: onPodUsageError,
		ArgsUsage:    "UUID...",
		Description: `Removes each pod (by UUID or unambiguous UUID prefix) at once, as gc would
eventually, without a grace period: exited pods, prepared pods that were never run,
aborted prepares and pods gc marked. For a pod that ran, the gc entrypoint of its
stage1 (coreos.com/rkt/stage1/gc) runs first; then everything mounted under the
pod directory is unmounted and the directory is deleted. A pod whose stage1 gc
fails is removed anyway, and the failure reported.

A running pod is refused (stop it first with "nscn stop"), and so is a pod that is
being prepared or removed by another process. The UUID of each removed pod is
printed on stdout. Every pod is attempted; the exit status is 254 if any failed
(2 if every failure was bad usage).

--uuid-file=FILE reads the UUID from FILE instead of the arguments.`,
		Flags: []cli.Flag{uuidFileFlag()},
		Action: func(c *cli.Context) error {
			g := globals(c)
			refs, err := podRefs(c, "rm")
			if err != nil {
				return err
			}
			return forEachPod(g, "rm", refs, func(ref string) error {
				p, err := pod.Get(c.Context, g.Dir, ref)
				if err != nil {
					return err
				}
				g.Timeline.Mark("pod-found")
				if err := removePod(c.Context, g, p); err != nil {
					return err
				}
				_, err = fmt.Fprintln(g.Stdout, p.UUID)
				return err
			})
		},
	}
}

// removePod removes a pod that is not alive. Its cost does not depend on
// the number of other pods.
func removePod(ctx context.Context, g *Globals, p *pod.Pod) error {
	switch p.State {
	case pod.Running:
		return errdefs.FailedPrecondition("remove pod %s: pod is running; stop it first (nscn stop %s)", p.UUID, p.UUID)
	case pod.Embryo, pod.Preparing:
		return errdefs.FailedPrecondition("remove pod %s: pod is being prepared", p.UUID)
	case pod.Deleting:
		return errdefs.FailedPrecondition("remove pod %s: pod is being removed by another process", p.UUID)
	case pod.Prepared:
		// pod.Remove leaves prepared pods alone; discarding one first
		// makes it garbage, which it removes.
		if err := p.ToGarbage(ctx); err != nil {
			return err
		}
	}
	err := pod.Remove(ctx, p, pod.WithStage1GC(podStage1GC(g)), pod.WithUnmount(mountplan.UnmountPod))
	if errors.Is(err, errdefs.ErrNotFound) && p.State == pod.Garbage {
		return nil // a concurrent gc removed it after we discarded it
	}
	return err
}
