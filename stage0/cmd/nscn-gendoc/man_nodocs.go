//go:build urfave_cli_no_docs

package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// manPage cannot render without urfave/cli's doc generators, which the
// urfave_cli_no_docs tag leaves out; the tag is for the nscn binary only.
func manPage(*cli.App) (string, error) {
	return "", errors.New("built with the urfave_cli_no_docs tag: build nscn-gendoc without it to write the man page")
}
