package cli

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/safetext"
)

func catManifestCommand() *cli.Command {
	return &cli.Command{
		Name:         "cat-manifest",
		Usage:        "print the manifest of a pod",
		OnUsageError: onPodUsageError,
		ArgsUsage:    "UUID",
		Description: `Prints the pod manifest (appc PodManifest JSON) that nscn wrote when it prepared the
pod with the given UUID or unambiguous UUID prefix, indented unless
--pretty-print=false. A pod still being prepared has no manifest yet.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "pretty-print", Value: true, Usage: "indent the JSON"},
			uuidFileFlag(),
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			ref, _, err := onePod(c, "cat-manifest", 0, "")
			if err != nil {
				return err
			}
			p, err := pod.Get(c.Context, g.Dir, ref)
			if err != nil {
				return err
			}
			pm, err := p.Manifest(c.Context)
			if err != nil {
				return err
			}
			var b []byte
			if c.Bool("pretty-print") {
				b, err = json.MarshalIndent(pm, "", "    ")
			} else {
				b, err = json.Marshal(pm)
			}
			if err != nil {
				return fmt.Errorf("format manifest of pod %s: %w", p.UUID, err)
			}
			_, err = g.Stdout.Write(append(safetext.JSON(b), '\n'))
			return err
		},
	}
}
