//go:build urfave_cli_no_docs

package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// manPages cannot render without urfave/cli's doc generators, which the
// urfave_cli_no_docs tag leaves out; the tag is for the nscn binary only.
func manPages(*cli.App) (map[string]string, error) {
	return nil, errors.New("built with the urfave_cli_no_docs tag: build nscn-gendoc without it to write the man pages")
}
