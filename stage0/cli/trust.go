package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
)

// trustCommand is replaced by the trust implementation.
func trustCommand() *cli.Command {
	return &cli.Command{
		Name:  "trust",
		Usage: "trust a key for image signature verification",
		Action: func(*cli.Context) error {
			return errdefs.Newf(errdefs.ErrNotImplemented, "trust is not implemented yet")
		},
	}
}
