package cli

import (
	"slices"
	"strings"
)

// appCmdArgs is a parsed command line of nscn app start, stop, rm,
// status, list and exec, which take rkt's order: the pod first, its flags
// after it (nscn app start UUID --app=NAME), and for exec the command
// after "--". urfave/cli stops at the first argument that is not a flag,
// so these commands parse their own.
type appCmdArgs struct {
	pos   []string          // positional arguments (the UUID)
	flags map[string]string // --name=value or --name value
	cmd   []string          // after "--"
}

// parseAppCmdArgs parses args; known lists the flags the command takes
// (all take a value). Flags may come before or after the UUID; a repeated
// flag keeps its last value.
func parseAppCmdArgs(args, known []string) (appCmdArgs, error) {
	out := appCmdArgs{flags: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out.cmd = args[i+1:]
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			out.pos = append(out.pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !slices.Contains(known, name) {
			return appCmdArgs{}, usageErrorf("unknown flag %q (flags: --%s)", a, strings.Join(known, ", --"))
		}
		if !hasValue {
			next := args[i+1:]
			if len(next) == 0 || next[0] == "--" {
				return appCmdArgs{}, usageErrorf("flag --%s needs a value", name)
			}
			value = next[0]
			i++
		}
		out.flags[name] = value
	}
	return out, nil
}
