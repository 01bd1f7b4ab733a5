package cli

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// GlobalFlagsFirst moves the global flags a command line gives after its
// (sub)command to before it, where urfave/cli looks for them: rkt took
// them anywhere ("rkt run --insecure-options=image app.aci", "rkt status
// --dir=/x UUID"), and rkt users' scripts still write them so. args is
// os.Args, program name included; the result is a new slice.
//
// Only flags are moved, never arguments: the scan of a command stops at
// "--" and, for a command urfave/cli parses, at the first argument (what
// follows may be a command's own argv, as in "nscn enter UUID ls --dir");
// run and prepare, which parse their own flags among their images, are
// scanned up to the "--" that starts an app's arguments.
func GlobalFlagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	globals := globalFlags(app)
	// The global flags already in front, then the command path.
	i := skipGlobalFlags(app, args)
	cmdStart := i
	var cmd *cli.Command
	cmds := app.Commands
	for i < len(args) {
		c := findCommand(cmds, args[i])
		if c == nil {
			break
		}
		cmd, cmds = c, c.Subcommands
		i++
	}
	if cmd == nil {
		return args
	}
	local := map[string]bool{}
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			local[n] = takesValue(f)
		}
	}
	if cmd.SkipFlagParsing { // run and prepare
		for n, spec := range runFlagSpecs {
			local[n] = !spec.boolean
		}
	}
	head := append([]string(nil), args[:i]...)
	var moved, rest []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" || (!strings.HasPrefix(a, "-") && !cmd.SkipFlagParsing) {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" || a == "---" {
			rest = append(rest, a)
			continue
		}
		name, hasValue := flagName(a)
		if takes, ok := globals[name]; ok {
			if _, shadowed := local[name]; !shadowed {
				moved = append(moved, a)
				if takes && !hasValue && i+1 < len(args) {
					i++
					moved = append(moved, args[i])
				}
				continue
			}
		}
		rest = append(rest, a)
		if local[name] && !hasValue && i+1 < len(args) {
			i++
			rest = append(rest, args[i])
		}
	}
	out := make([]string, 0, len(args))
	out = append(out, head[:cmdStart]...)
	out = append(out, moved...)
	out = append(out, head[cmdStart:]...)
	out = append(out, rest...)
	return append(out, args[i:]...)
}

// flagName is the name of a flag argument ("--dir=/x" → "dir", true).
// globalFlags maps the names of app's flags to whether each takes a value.
func globalFlags(app *cli.App) map[string]bool {
	globals := map[string]bool{}
	for _, f := range app.Flags {
		for _, n := range f.Names() {
			globals[n] = takesValue(f)
		}
	}
	return globals
}

// skipGlobalFlags returns the index in args (os.Args) of the first
// argument after the global flags in front of the command path: the
// command's name, if there is one.
func skipGlobalFlags(app *cli.App, args []string) int {
	globals := globalFlags(app)
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		name, hasValue := flagName(args[i])
		if v, ok := globals[name]; ok && v && !hasValue {
			i++
		}
		i++
	}
	return i
}

func flagName(a string) (string, bool) {
	a = strings.TrimLeft(a, "-")
	name, _, hasValue := strings.Cut(a, "=")
	return name, hasValue
}

// takesValue tells a flag given as --name VALUE from a boolean one.
func takesValue(f cli.Flag) bool {
	switch f := f.(type) {
	case *cli.BoolFlag:
		return false
	case *cli.GenericFlag:
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			return false
		}
	}
	return true
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
