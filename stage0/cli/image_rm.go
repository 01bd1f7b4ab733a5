package cli

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Exit statuses of image rm: 2 when every failure was bad input (an
// ambiguous or empty ID prefix), 1 when any image could not be removed.
const (
	exitImagesUsage  = 2
	exitImagesFailed = 1
)

func imageRmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove images from the store",
		ArgsUsage: "IMAGEID...",
		Description: `Removes each image (by ID or unambiguous prefix) with its rendered trees.
An ID prefix must name at least one hex digit after "sha512-". Every image is
attempted; the exit status is 1 if any could not be removed, 2 if every failure was
bad usage (an ambiguous, empty or bare prefix).`,
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
			status := exitImagesUsage
			for _, ref := range c.Args().Slice() {
				im, err := s.Remove(c.Context, ref)
				if err != nil {
					_, _ = fmt.Fprintf(g.Stderr, "nscn: image rm %q: %v\n", ref, err)
					if firstErr == nil {
						firstErr = err
					}
					if !errors.Is(err, errdefs.ErrInvalidArgument) {
						status = exitImagesFailed
					}
					continue
				}
				_, _ = fmt.Fprintf(g.Stderr, "removed image %s (%s)\n", im.Key, im.Name)
			}
			if firstErr != nil {
				return ExitStatusErr{Status: status, Err: firstErr}
			}
			return nil
		},
	}
}
