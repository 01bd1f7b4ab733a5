// Package cli is the nscn command tree: one file per subcommand. It parses
// flags and prints results; the work itself lives in the stage0 and store
// packages. It runs in stage0 and most commands need root.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/appc/spec/schema/types/resource"
	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/authconfig"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/logstyle"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/internal/version"
)

// Defaults of the global flags, as rkt has them.
const (
	DefaultDataDir      = "/var/lib/nscn"
	DefaultLocalConfig  = "/etc/nscn"
	DefaultSystemConfig = "/usr/lib/nscn"
)

// Globals are the values of the global flags, shared by every subcommand.
type Globals struct {
	Dir          string
	LocalConfig  string
	SystemConfig string
	// UserConfig is the user's configuration directory (--user-config,
	// as rkt's): its auth.d comes before the local and system ones.
	UserConfig         string
	Insecure           InsecureOptions
	Debug              bool
	TrustKeysFromHTTPS bool
	// MaxImageSize bounds an image's uncompressed size (0: no bound), so
	// a decompression bomb stops before it fills the disk.
	MaxImageSize int64
	// Timeline marks the phases of a run (NSCN_TIMELINE=1 or --debug;
	// nil: off).
	Timeline *timeline.Timeline
	Log      *slog.Logger
	Stdout   io.Writer
	Stderr   io.Writer
	Stdin    io.Reader
}

// InsecureOptions are the security checks a user chose to skip.
type InsecureOptions struct {
	Image  bool // skip signature verification
	TLS    bool // skip TLS certificate verification
	HTTP   bool // allow plain http
	Pubkey bool // allow fetching keys over http
	// Run-time relaxations (used by later stages).
	Capabilities bool
	Paths        bool
	Seccomp      bool
}

// ParseInsecureOptions parses the comma list of --insecure-options.
func ParseInsecureOptions(s string) (InsecureOptions, error) {
	var o InsecureOptions
	if strings.TrimSpace(s) == "" {
		return o, nil
	}
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "none":
		case "image":
			o.Image = true
		case "tls":
			o.TLS = true
		case "http":
			o.HTTP = true
		case "pubkey":
			o.Pubkey = true
		case "capabilities":
			o.Capabilities = true
		case "paths":
			o.Paths = true
		case "seccomp":
			o.Seccomp = true
		case "all-fetch":
			o.Image, o.TLS, o.HTTP, o.Pubkey = true, true, true, true
		case "all-run":
			o.Capabilities, o.Paths, o.Seccomp = true, true, true
		case "all":
			o = InsecureOptions{true, true, true, true, true, true, true}
		default:
			return o, errdefs.InvalidArgument("unknown insecure option %q (valid: none,image,tls,http,pubkey,capabilities,paths,seccomp,all-fetch,all-run,all)", f)
		}
	}
	return o, nil
}

type globalsKey struct{}

// globals returns the parsed global flags of the running command.
func globals(c *cli.Context) *Globals {
	return c.Context.Value(globalsKey{}).(*Globals)
}

// NewApp builds the nscn command tree. Streams are parameters so tests can
// drive the tree in-process.
func NewApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := newApp(stdin, stdout, stderr)
	app.Commands = commands()
	refuseUnknown(app)
	return app
}

// loneCommands are the commands a command line may run from a tree that
// holds only them (appFor): the one a pod's start runs. None has an
// alias or a subcommand, nothing in them walks the tree, and
// TestLoneCommandsAsInTree checks that each is the tree's command of that
// name but for the flag table of its description, which only help shows.
var loneCommands = map[string]func() *cli.Command{
	"run": loneRunCommand,
}

// appFor builds the tree that runs args (os.Args). Building all of it is
// a fifth of nscn's start on a pod's run path (its flag tables, closures
// and help texts), and a command line that runs one of loneCommands needs
// none of the others: it gets a tree of that command alone. Any command
// line that could show help, complete or list the tree (a help flag or
// command anywhere in it, even among an app's arguments) gets the whole
// tree, so that what nscn prints and how it parses stay the same.
func appFor(stdin io.Reader, stdout, stderr io.Writer, args []string) *cli.App {
	app := newApp(stdin, stdout, stderr)
	if build := loneCommand(app, args); build != nil {
		app.Commands = []*cli.Command{build()}
	} else {
		app.Commands = commands()
	}
	refuseUnknown(app)
	return app
}

// loneCommand returns the constructor of the command args run, if it is
// one of loneCommands and nothing in args could ask for more of the tree.
func loneCommand(app *cli.App, args []string) func() *cli.Command {
	for _, a := range args[min(1, len(args)):] {
		if mayNeedTree(a) {
			return nil
		}
	}
	i := skipGlobalFlags(app, args)
	if i >= len(args) {
		return nil
	}
	return loneCommands[args[i]]
}

// mayNeedTree says whether a command line argument might make urfave/cli
// or a command show help or complete: help in any spelling, and the
// completion flag.
func mayNeedTree(a string) bool {
	if strings.Contains(a, "generate-bash-completion") {
		return true
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
	return name == "help" || name == "h"
}

// newApp builds the root of the tree, without its commands.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	g := &Globals{Stdout: stdout, Stderr: stderr, Stdin: stdin}
	app := &cli.App{
		Name:                 "nscn",
		Usage:                "Nose Cone, an App Container runtime",
		Version:              version.Version,
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideVersion:          true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Value: DefaultDataDir, Usage: "nscn data directory", EnvVars: []string{"NSCN_DIR"}},
			&cli.StringFlag{Name: "local-config", Value: DefaultLocalConfig, Usage: "local configuration directory"},
			&cli.StringFlag{Name: "system-config", Value: DefaultSystemConfig, Usage: "system configuration directory"},
			&cli.StringFlag{Name: "user-config", Value: authconfig.UserDir(), Usage: "user configuration directory (auth.d), read before the local one"},
			&cli.StringFlag{Name: "insecure-options", Value: "none", Usage: "comma-separated checks to skip: none,image,tls,http,pubkey,capabilities,paths,seccomp,all-fetch,all-run,all"},
			&cli.BoolFlag{Name: "debug", Usage: "print debug messages to stderr"},
			&cli.BoolFlag{Name: "trust-keys-from-https", Usage: "automatically trust keys fetched over https during discovery"},
			&cli.StringFlag{Name: "max-image-size", Value: "8Gi", Usage: "refuse images larger than this uncompressed (e.g. 512Mi, 16Gi; 0 for no limit)"},
		},
		Before: func(c *cli.Context) error {
			if err := checkStringFlags(c, c.App.Flags); err != nil {
				return err
			}
			ins, err := ParseInsecureOptions(c.String("insecure-options"))
			if err != nil {
				return err
			}
			// Paths end up in mount options and the pod directory, which
			// must be absolute whatever the working directory.
			dir, err := filepath.Abs(c.String("dir"))
			if err != nil {
				return errdefs.InvalidArgument("--dir %q: %v", c.String("dir"), err)
			}
			g.Dir = dir
			g.LocalConfig = c.String("local-config")
			g.SystemConfig = c.String("system-config")
			g.UserConfig = c.String("user-config")
			g.Insecure = ins
			g.Debug = c.Bool("debug")
			g.TrustKeysFromHTTPS = c.Bool("trust-keys-from-https")
			q, err := resource.ParseQuantity(c.String("max-image-size"))
			if err != nil || q.Value() < 0 {
				return errdefs.InvalidArgument("--max-image-size %q is not a size (e.g. 512Mi, 32Gi, 0)", c.String("max-image-size"))
			}
			g.MaxImageSize = q.Value()
			level := slog.LevelInfo
			if g.Debug {
				level = slog.LevelDebug
			}
			g.Log = logstyle.New(stderr, level, g.Debug)
			if g.Debug {
				timeline.Enable()
			}
			// Exported so that the stage1 and its helpers, which inherit
			// the environment, print on stage0's axis.
			g.Timeline = timeline.FromEnv("stage0")
			g.Timeline.Export()
			g.Timeline.MarkProcessStart()
			g.Timeline.Mark("flags-parsed")
			// In the context too, for the packages a command calls
			// (pod removal, the tree store) to mark their phases.
			c.Context = timeline.NewContext(context.WithValue(c.Context, globalsKey{}, g), g.Timeline)
			return nil
		},
		OnUsageError:   usageError,
		ExitErrHandler: func(*cli.Context, error) {}, // main maps errors to exit codes
	}
	return app
}

// refuseUnknown overrides urfave/cli's handling of a command line it
// cannot parse, in every command of app's tree: an unknown flag or a flag
// without its value, a flag value with a control character, and an
// unknown command or subcommand. urfave/cli
// prints the command's help on stdout for the first and "No help topic"
// with its own exit status for the second; nscn says what is wrong in one
// line, classified errdefs.ErrInvalidArgument (exit 2), and leaves stdout
// alone. "nscn help NAME" with an unknown NAME is refused the same way.
func refuseUnknown(app *cli.App) {
	var unknown string // set by CommandNotFound, which cannot return an error
	app.CommandNotFound = func(_ *cli.Context, name string) { unknown = name }
	app.After = func(*cli.Context) error {
		if unknown != "" {
			return usageErrorf("no command %q to show help for (see nscn --help)", unknown)
		}
		return nil
	}
	app.Action = dispatch
	var walk func(cmds []*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if c.OnUsageError == nil {
				c.OnUsageError = usageError
			}
			c.Before = checkingFlags(c.Before)
			if len(c.Subcommands) > 0 {
				if c.Action == nil {
					c.Action = dispatch
				}
				walk(c.Subcommands)
			}
		}
	}
	walk(app.Commands)
}

// checkingFlags returns a Before hook that refuses control characters in
// the command's string flags (checkStringFlags), then runs before.
func checkingFlags(before cli.BeforeFunc) cli.BeforeFunc {
	return func(c *cli.Context) error {
		if err := checkStringFlags(c, c.Command.Flags); err != nil {
			return fmt.Errorf("%s: %w", commandPath(c), err)
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
}

// usageError classifies a flag urfave/cli could not parse as a usage
// error naming the command.
func usageError(c *cli.Context, err error, _ bool) error {
	if p := commandPath(c); p != "" {
		err = fmt.Errorf("%s: %w", p, err)
	}
	return errdefs.With(errdefs.ErrInvalidArgument, err)
}

// dispatch is the action of nscn and of each command with subcommands:
// urfave/cli runs it when no subcommand matched. It refuses an unknown
// one and shows the help without one.
func dispatch(c *cli.Context) error {
	p := commandPath(c)
	if c.Args().Present() {
		if p == "" {
			return usageErrorf("unknown command %q (see nscn --help)", c.Args().First())
		}
		return usageErrorf("%s: unknown command %q (see nscn %s --help)", p, c.Args().First(), p)
	}
	if p == "" {
		return cli.ShowAppHelp(c)
	}
	return cli.ShowSubcommandHelp(c)
}

// commandPath names the running command as the user typed it after
// "nscn": "fetch", "image list", or "" for nscn itself.
func commandPath(c *cli.Context) string {
	var names []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" && l.Command.Name != c.App.Name {
			names = append(names, l.Command.Name)
		}
	}
	slices.Reverse(names)
	return strings.Join(names, " ")
}

// commands is the static table of subcommands; each lives in its own file.
func commands() []*cli.Command {
	return []*cli.Command{
		fetchCommand(),
		runCommand(),
		prepareCommand(),
		runPreparedCommand(),
		appCommand(),
		listCommand(),
		statusCommand(),
		logsCommand(),
		catManifestCommand(),
		enterCommand(),
		stopCommand(),
		rmCommand(),
		gcCommand(),
		exportCommand(),
		serviceStub(MetadataServiceCommand()),
		serviceStub(CRICommand()),
		serviceStub(APIServiceCommand()),
		imageCommand(),
		trustCommand(),
		configCommand(),
		versionCommand(),
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of nscn and the appc spec it implements",
		Action: func(c *cli.Context) error {
			g := globals(c)
			_, err := fmt.Fprintf(g.Stdout, "nscn Version: %s\nappc Version: %s\nGo Version: %s\n", version.Version, version.AppcVersion, goVersion())
			return err
		},
	}
}

// exitf is how a subcommand reports a usage problem it found itself.
func usageErrorf(format string, args ...any) error {
	return errdefs.InvalidArgument(format, args...)
}
