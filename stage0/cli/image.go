package cli

import "github.com/urfave/cli/v2"

func imageCommand() *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "operate on the images in the store",
		Subcommands: []*cli.Command{
			imageListCommand(),
			imageRmCommand(),
			imageCatManifestCommand(),
			imageExportCommand(),
			imageExtractCommand(),
			imageRenderCommand(),
			imageVerifyCommand(),
			imageGCCommand(),
		},
	}
}
