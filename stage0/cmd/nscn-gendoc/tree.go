package main

import (
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	nscncli "github.com/nosecone/nscn/stage0/cli"
)

// node is one command of the tree as the completion scripts see it: its
// path from the root ("" for nscn itself, "image list" for a
// subcommand), the names of its visible subcommands with their usage, and
// its flags, spelled as typed (--name, -n).
type node struct {
	path     string
	commands []entry
	flags    []entry
}

type entry struct{ name, usage string }

// walk lists the nodes of the app's command tree, depth first, the root
// first. Hidden commands and flags are left out, as from --help.
func walk(app *cli.App) []node {
	root := node{commands: commandEntries(app.Commands), flags: flagEntries(app.Flags)}
	nodes := []node{root}
	var visit func(prefix string, cmds []*cli.Command)
	visit = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			for _, name := range c.Names() {
				p := strings.TrimSpace(prefix + " " + name)
				flags := flagEntries(c.Flags)
				if c.SkipFlagParsing {
					flags = append(flags, selfParsedFlags()...)
				}
				nodes = append(nodes, node{path: p, commands: commandEntries(c.Subcommands), flags: flags})
				visit(p, c.Subcommands)
			}
		}
	}
	visit("", app.Commands)
	return nodes
}

func commandEntries(cmds []*cli.Command) []entry {
	var out []entry
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		for _, name := range c.Names() {
			out = append(out, entry{name: name, usage: c.Usage})
		}
	}
	return out
}

func flagEntries(flags []cli.Flag) []entry {
	var out []entry
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		usage := ""
		if d, ok := f.(cli.DocGenerationFlag); ok {
			usage = d.GetUsage()
		}
		for _, name := range f.Names() {
			dash := "--"
			if len(name) == 1 {
				dash = "-"
			}
			out = append(out, entry{name: dash + name, usage: usage})
		}
	}
	return out
}

// selfParsedFlags are the flags of the commands that parse their own
// arguments (run, prepare), sorted by name.
func selfParsedFlags() []entry {
	usage := nscncli.RunFlagUsage()
	var out []entry
	for _, name := range slices.Sorted(maps.Keys(usage)) {
		out = append(out, entry{name: "--" + name, usage: usage[name]})
	}
	return out
}
