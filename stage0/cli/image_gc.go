package cli

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/stage0/imagehold"
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
			refs, unlock, err := imagehold.Lock(c.Context, s, g.Dir)
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
