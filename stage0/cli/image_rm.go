package cli

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func imageRmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove images from the store",
		ArgsUsage: "IMAGEID...",
		Description: `Removes each image (by ID or unambiguous prefix) with its rendered trees.
Every image is attempted; the exit status is non-zero if any could not be removed.`,
		Action: func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() == 0 {
				return usageErrorf("image rm: at least one IMAGEID is required")
			}
			s, err := openStore(c.Context, g)
			if err != nil {
				return err
			}
			var firstErr error
			for _, ref := range c.Args().Slice() {
				im, err := s.Remove(c.Context, ref)
				if err != nil {
					_, _ = fmt.Fprintf(g.Stderr, "nscn: image rm %s: %v\n", ref, err)
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				_, _ = fmt.Fprintf(g.Stderr, "removed image %s (%s)\n", im.Key, im.Name)
			}
			if firstErr != nil {
				return ExitStatusErr{Status: 1, Err: firstErr}
			}
			return nil
		},
	}
}
