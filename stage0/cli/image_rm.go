package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/safetext"
	"github.com/nosecone/nscn/stage0/imagehold"
	"github.com/nosecone/nscn/store"
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
		ArgsUsage: "IMAGE...",
		Description: `Removes each image (by ID or unambiguous prefix, or by name: example.com/app or
example.com/app:1.0 names the newest stored image of that name and version) with its
rendered trees. It says which on stderr and ends, as rkt did, with "N image(s)
successfully removed" when it removed any. An image
a pod uses is refused, naming the pods: a pod uses the images of its trees (its apps'
and its stage1's) until it is removed with nscn rm, or by nscn gc once it has exited.
An ID prefix must name at least one hex digit after "sha512-". Every image is
attempted; the exit status is 1 if any could not be removed, 2 if every failure was
bad usage (an ambiguous, empty or bare prefix).`,
		Action: func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() == 0 {
				return usageErrorf("image rm: at least one IMAGE is required")
			}
			s, err := openStore(c.Context, g)
			if err != nil {
				return err
			}
			refs, unlock, err := imagehold.Lock(c.Context, s, g.Dir)
			if err != nil {
				return err
			}
			defer unlock()
			var firstErr error
			status := exitImagesUsage
			removed := 0
			for _, ref := range c.Args().Slice() {
				im, err := findImage(c.Context, s, ref)
				if err == nil {
					im, err = s.Remove(c.Context, im.Key, refs)
				}
				var inUse *store.InUseError
				if errors.As(err, &inUse) {
					err = fmt.Errorf("%w; remove the %s first (nscn rm %s, or nscn gc once exited)", err, plural(len(inUse.Holders), "pod", "pods"), strings.Join(inUse.Holders, " "))
				}
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
				removed++
				_, _ = fmt.Fprintf(g.Stderr, "removed image %s (%s)\n", im.Key, safetext.Escape(im.Name))
			}
			if removed > 0 {
				_, _ = fmt.Fprintf(g.Stderr, "%d image(s) successfully removed\n", removed)
			}
			if firstErr != nil {
				return ExitStatusErr{Status: status, Err: firstErr}
			}
			return nil
		},
	}
}

// plural picks the singular or plural of a word for n things.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
