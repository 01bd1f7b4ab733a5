package cli

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/safetext"
)

func imageCatManifestCommand() *cli.Command {
	return &cli.Command{
		Name:      "cat-manifest",
		Usage:     "print the manifest of a stored image",
		ArgsUsage: "IMAGE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "pretty-print", Value: true, Usage: "indent the JSON"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() != 1 {
				return usageErrorf("image cat-manifest: exactly one IMAGE is required")
			}
			s := openStoreReadOnly(c.Context, g)
			im, err := findImage(c.Context, s, c.Args().First())
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if c.Bool("pretty-print") {
				if err := json.Indent(&out, im.Manifest, "", "    "); err != nil {
					return fmt.Errorf("format manifest: %w", err)
				}
			} else if err := json.Compact(&out, im.Manifest); err != nil {
				return fmt.Errorf("format manifest: %w", err)
			}
			out.WriteByte('\n')
			_, err = g.Stdout.Write(safetext.JSON(out.Bytes()))
			return err
		},
	}
}
