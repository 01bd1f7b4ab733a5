package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/safetext"
)

func imageVerifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check stored images and rendered trees against their hashes",
		ArgsUsage: "[IMAGE...]",
		Description: `Recomputes the sha512 of each image blob and the content hash of each rendered
tree and compares them with the recorded ones. An IMAGE is an ID (or prefix) or a name,
as for the other image commands. Without arguments every image and tree is
checked. Exits non-zero when anything is corrupt.`,
		Flags: []cli.Flag{formatFlag},
		// The trees' hashes are BLAKE3's on most hosts, which nscn does
		// not link: verification runs in nscn-fetch.
		Action: withFetchSide(func(c *cli.Context) error {
			g := globals(c)
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			s := openStoreReadOnly(c.Context, g)
			// Names are resolved here: the store takes IDs.
			keys := make([]string, 0, c.NArg())
			for _, ref := range c.Args().Slice() {
				im, err := findImage(c.Context, s, ref)
				if err != nil {
					return err
				}
				keys = append(keys, im.Key)
			}
			results, err := s.Verify(c.Context, keys)
			if err != nil {
				return err
			}
			bad := 0
			for _, r := range results {
				if !r.OK {
					bad++
				}
			}
			if isJSONFormat(format) {
				if err := writeJSONAs(g.Stdout, results, format); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(g.Stdout, 0, 8, 2, ' ', 0)
				_, _ = fmt.Fprintln(tw, "KIND\tID\tSTATUS\tDETAIL")
				for _, r := range results {
					status, detail := "ok", r.Name
					if !r.OK {
						status, detail = "CORRUPT", r.Problem
					}
					_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Kind, r.Key, status, safetext.Escape(detail))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if bad > 0 {
				return errdefs.FailedPrecondition("%d of %d stored objects are corrupt", bad, len(results))
			}
			return nil
		}),
	}
}
