package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/store"
)

func imageGCCommand() *cli.Command {
	return &cli.Command{
		Name:  "gc",
		Usage: "remove unused images and rendered trees",
		Description: `Removes rendered trees and images that no pod uses and that were not used
within --grace-period, blobs no index entry names, and what interrupted fetches and
renders left behind. A pod uses its trees (its apps' and its stage1's) and the images
they were rendered from until it is removed (nscn rm, or nscn gc once it has exited),
whatever its state: prepared, running, exited or marked as garbage.`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "grace-period", Value: 24 * time.Hour, Usage: "keep images and trees used more recently than this"},
			&cli.BoolFlag{Name: "dry-run", Usage: "only print what would be removed"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			s, err := openStore(c.Context, g)
			if err != nil {
				return err
			}
			refs, unlock, err := lockPodReferences(c.Context, s, g.Dir)
			if err != nil {
				return err
			}
			defer unlock()
			rep, err := s.GC(c.Context, store.GCOptions{
				GracePeriod: c.Duration("grace-period"),
				Refs:        refs,
				DryRun:      c.Bool("dry-run"),
			})
			if rep != nil {
				verb := "removed"
				if c.Bool("dry-run") {
					verb = "would remove"
				}
				for _, k := range rep.Trees {
					_, _ = fmt.Fprintf(g.Stderr, "%s tree %s\n", verb, k)
				}
				for _, k := range rep.Images {
					_, _ = fmt.Fprintf(g.Stderr, "%s image %s\n", verb, k)
				}
				for _, k := range rep.OrphanBlobs {
					_, _ = fmt.Fprintf(g.Stderr, "removed orphan blob %s\n", k)
				}
				if n := len(rep.Images); n > 0 && !c.Bool("dry-run") {
					// rkt's closing line, which scripts grep for.
					_, _ = fmt.Fprintf(g.Stderr, "%d image(s) successfully removed\n", n)
				}
			}
			return err
		},
	}
}

// lockPodReferences takes the store's references lock exclusive, so that
// no pod starts to hold anything meanwhile, and collects what the pods of
// the data directory hold in the store, in any state, from what stage0
// recorded in each pod directory (pod.ListHoldings). The caller removes
// from the store under the lock and then calls unlock.
func lockPodReferences(ctx context.Context, s *store.Store, dataDir string) (refs store.References, unlock func(), err error) {
	if unlock, err = s.LockReferences(ctx, true); err != nil {
		return refs, nil, err
	}
	hs, err := pod.ListHoldings(ctx, dataDir)
	if err != nil {
		unlock()
		return refs, nil, err
	}
	for _, h := range hs {
		for _, k := range h.Trees {
			refs.HoldTree(h.UUID, k)
		}
		for _, id := range h.Images {
			refs.HoldImage(h.UUID, id)
		}
	}
	return refs, unlock, nil
}
