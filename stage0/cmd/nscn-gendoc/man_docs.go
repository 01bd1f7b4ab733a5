//go:build !urfave_cli_no_docs

package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// manPages renders the whole command tree as nscn.1, and each visible
// top-level command as its own section 1 page, nscn-COMMAND.1 (rkt's
// habit: man nscn-run), keyed by file name.
func manPages(app *cli.App) (map[string]string, error) {
	pages := map[string]string{}
	page, err := app.ToManWithSection(1)
	if err != nil {
		return nil, fmt.Errorf("render the man page nscn.1: %w", err)
	}
	pages["nscn.1"] = page
	for _, c := range app.VisibleCommands() {
		if c.Name == "help" {
			continue
		}
		// A command as an app of its own: ToMan renders an app's name,
		// usage, description, flags and commands.
		sub := &cli.App{
			Name:        "nscn-" + c.Name,
			Usage:       c.Usage,
			UsageText:   strings.TrimSpace("nscn " + c.Name + " [OPTIONS] " + c.ArgsUsage),
			Description: c.Description,
			Flags:       c.Flags,
			Commands:    c.Subcommands,
		}
		page, err := sub.ToManWithSection(1)
		if err != nil {
			return nil, fmt.Errorf("render the man page of nscn %s: %w", c.Name, err)
		}
		pages["nscn-"+c.Name+".1"] = page
	}
	return pages, nil
}
