package cli

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/stage0/apps"
	"github.com/nosecone/nscn/stage0/localimage"
	"github.com/nosecone/nscn/stage0/prepare"
)

// sandboxCommandName is "nscn app sandbox", which runOrPrepare runs as a
// run with no image and a mutable pod.
const sandboxCommandName = "sandbox"

// sandboxPodFlags are the pod flags of run that app sandbox takes.
var sandboxPodFlags = []string{
	"net", "dns", "dns-search", "dns-opt", "dns-domain", "dns-conf-mode", "hostname", "hosts-entry",
	"user-annotation", "user-label", "port", "publish", "volume", "uuid-file-save", "ipc", "pid", "no-overlay",
	"mds-register", "mds-socket", "pull-policy",
	"stage1-from-dir", "stage1-path", "stage1-url", "stage1-name", "stage1-hash",
}

// appAddPodFlags are the flags app add takes beside the per-app ones.
var appAddPodFlags = []string{"pull-policy", "os", "arch", "inherit-env"}

func appCommand() *cli.Command {
	return &cli.Command{
		Name:  "app",
		Usage: "change the apps of a running pod (mutable pods)",
		Description: `A mutable pod starts with no app ("nscn app sandbox") and runs until it is
stopped; apps are added to it, started, stopped and removed while it runs. The pod's stage1
does the work through its app entrypoints (rkt's coreos.com/rkt/stage1/app/*); a stage1
without them (fly, kvm) is refused. See Documentation/app.md.`,
		Subcommands: []*cli.Command{
			appSandboxCommand(),
			appAddCommand(),
			appVerbCommand("start", "start an app of a mutable pod", apps.Start),
			appVerbCommand("stop", "stop an app of a mutable pod (its exit status is recorded)", apps.Stop),
			appVerbCommand("rm", "remove an app from a mutable pod, stopping it first", apps.Rm),
			appListCommand(),
			appStatusCommand(),
			appExecCommand(),
		},
	}
}

func appSandboxCommand() *cli.Command {
	flags := append([]string(nil), sandboxPodFlags...)
	sort.Strings(flags)
	var b strings.Builder
	for _, n := range flags {
		s := runFlagSpecs[n]
		arg := "=VALUE"
		if s.boolean {
			arg = ""
		}
		fmt.Fprintf(&b, "   --%-28s %s\n", n+arg, s.usage)
	}
	return &cli.Command{
		Name:            sandboxCommandName,
		Usage:           "start a mutable pod with no apps and print its UUID",
		ArgsUsage:       "[FLAGS]",
		SkipFlagParsing: true,
		Description: `Prepares a pod with no app, prints its UUID on stdout (and in --uuid-file-save), and
runs it with the chosen stage1 in the foreground, as run does, until "nscn stop" stops it.
The pod does not end when it has no app, nor when its apps exit. Add apps with
"nscn app add UUID IMAGE". --volume and --port define what the apps added later may
mount and expose. nscn app sandbox exits 0 when the pod is stopped; its own failures
exit 254.

Flags:
` + b.String(),
		Action: func(c *cli.Context) error { return runOrPrepare(c, true) },
	}
}

// checkSandboxArgs refuses images and the flags of run that app sandbox
// does not take.
func checkSandboxArgs(ra *runArgs) error {
	if len(ra.apps) > 0 {
		return usageErrorf("app sandbox takes no image: add apps with nscn app add UUID IMAGE")
	}
	for name := range ra.pod {
		if !contains(sandboxPodFlags, name) {
			return usageErrorf("app sandbox: --%s is not a flag of a sandbox (see nscn app sandbox --help)", name)
		}
	}
	ra.sandbox = true
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// startSandbox checks that the stage1 runs mutable pods and prints the
// pod's UUID before the stage1 takes over.
func startSandbox(g *Globals, prep *prepare.Prepared) error {
	if err := prep.Entrypoints.CheckApps(); err != nil {
		return fmt.Errorf("app sandbox: %w", err)
	}
	_, err := fmt.Fprintln(g.Stdout, prep.Pod.UUID)
	return err
}

// appsConfig is the apps.Config of the running command.
func appsConfig(c *cli.Context, g *Globals) (apps.Config, error) {
	st, err := openStore(c.Context, g)
	if err != nil {
		return apps.Config{}, err
	}
	return apps.Config{
		DataDir: g.Dir, Store: st, Log: g.Log, Debug: g.Debug,
		Env: stage1Env(g), Stdout: g.Stdout, Stderr: g.Stderr,
	}, nil
}

func appAddCommand() *cli.Command {
	return &cli.Command{
		Name:            "add",
		Usage:           "add an app to a running mutable pod",
		ArgsUsage:       "UUID IMAGE [APPFLAGS] [-- ARGS...]",
		SkipFlagParsing: true,
		Description: `Fetches IMAGE as run does (pull policy "new" by default), renders it and adds it to
the running mutable pod UUID as an app, which "nscn app start" then starts. APPFLAGS are
run's per-app flags (--name, --exec, --mount, --environment, --set-env, --user, --group,
--readonly-rootfs, --working-dir, the isolator flags, ...), and --pull-policy, --os,
--arch and --inherit-env. A --mount names a volume the sandbox defined with --volume.
The app is confined as any app of a pod nscn run starts. Its name (--name, or the last
part of the image name) must be new in the pod.
` + runFlagsHelp(),
		Action: withFetchSide(func(c *cli.Context) error {
			g := globals(c)
			args := c.Args().Slice()
			if len(args) == 1 && (args[0] == "--help" || args[0] == "-h") {
				return cli.ShowSubcommandHelp(c)
			}
			if len(args) < 2 || strings.HasPrefix(args[0], "-") {
				return usageErrorf("app add: want UUID IMAGE [APPFLAGS] [-- ARGS...]")
			}
			if err := needRoot("app add"); err != nil {
				return err
			}
			ra, err := parseRunArgs(args[1:], onlyRun)
			if err != nil {
				return err
			}
			if len(ra.apps) != 1 {
				return usageErrorf("app add: want exactly one IMAGE, got %d", len(ra.apps))
			}
			for name := range ra.pod {
				if !runFlagSpecs[name].perApp && !contains(appAddPodFlags, name) {
					return usageErrorf("app add: --%s is a flag of the pod, not of an app", name)
				}
			}
			a, err := appOptions(ra, &ra.apps[0])
			if err != nil {
				return fmt.Errorf("image %s: %w", ra.apps[0].image, err)
			}
			cfg, err := appsConfig(c, g)
			if err != nil {
				return err
			}
			policy := localimage.PullNew
			if v := ra.flag("pull-policy"); v != "" {
				if policy, err = localimage.ParsePullPolicy(v); err != nil {
					return err
				}
			}
			f, err := imageFetcher(c.Context, g, cfg.Store, policy, ra.flag("os"), ra.flag("arch"))
			if err != nil {
				return err
			}
			name, err := apps.Add(c.Context, cfg, args[0], apps.AddOptions{
				Prepare: prepare.Options{
					Fetcher: f, AllCapabilities: g.Insecure.Capabilities,
					InheritEnv: ra.boolean(nil, "inherit-env"), HostEnv: timeline.Strip(os.Environ()),
				},
				App:                 a,
				DisableCapabilities: g.Insecure.Capabilities, DisablePaths: g.Insecure.Paths, DisableSeccomp: g.Insecure.Seccomp,
			})
			if err != nil {
				return err
			}
			g.Log.Info("app added", "app", name)
			return nil
		}),
	}
}

// appCmd parses the command line of an app subcommand that takes one
// UUID (see parseAppCmdArgs); needApp requires --app.
func appCmd(c *cli.Context, known []string, needApp bool) (appCmdArgs, error) {
	if c.Args().Len() == 1 && (c.Args().First() == "--help" || c.Args().First() == "-h") {
		return appCmdArgs{}, cli.ShowSubcommandHelp(c)
	}
	a, err := parseAppCmdArgs(c.Args().Slice(), known)
	if err != nil {
		return a, fmt.Errorf("%s: %w", commandPath(c), err)
	}
	if len(a.pos) != 1 {
		return a, usageErrorf("%s: want exactly one pod UUID, got %d arguments", commandPath(c), len(a.pos))
	}
	if needApp && a.flags["app"] == "" {
		return a, usageErrorf("%s: --app=NAME is required", commandPath(c))
	}
	return a, nil
}

// appVerbCommand is app start, stop and rm: UUID --app=NAME.
func appVerbCommand(name, usage string, do func(ctx context.Context, cfg apps.Config, uuid, app string) error) *cli.Command {
	return &cli.Command{
		Name:            name,
		Usage:           usage,
		ArgsUsage:       "UUID --app=NAME",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			g := globals(c)
			a, err := appCmd(c, []string{"app"}, true)
			if err != nil || a.pos == nil {
				return err
			}
			if len(a.cmd) > 0 {
				return usageErrorf("app %s: unexpected arguments after --", name)
			}
			if err := needRoot("app " + name); err != nil {
				return err
			}
			cfg, err := appsConfig(c, g)
			if err != nil {
				return err
			}
			return do(c.Context, cfg, a.pos[0], a.flags["app"])
		},
	}
}

// format reads --format: table (the default), json or json-pretty.
func appFormat(a appCmdArgs) (string, error) {
	f := a.flags["format"]
	if f == "" {
		return "table", nil
	}
	if f != "table" && !isJSONFormat(f) {
		return "", usageErrorf("unknown --format %q (want table, json or json-pretty)", f)
	}
	return f, nil
}

func appListCommand() *cli.Command {
	return &cli.Command{
		Name:            "list",
		Usage:           "list the apps of a pod and their states",
		ArgsUsage:       "UUID [--format=table|json|json-pretty]",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			g := globals(c)
			a, err := appCmd(c, []string{"format"}, false)
			if err != nil || a.pos == nil {
				return err
			}
			format, err := appFormat(a)
			if err != nil {
				return err
			}
			sts, err := apps.List(c.Context, g.Dir, a.pos[0])
			if err != nil {
				return err
			}
			if isJSONFormat(format) {
				return writeJSONAs(g.Stdout, sts, format)
			}
			tw := tabwriter.NewWriter(g.Stdout, 0, 8, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "NAME\tSTATE\tIMAGE\tEXIT\tCREATED\tSTARTED")
			for _, st := range sts {
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, st.State, st.Image, exitText(st.ExitCode), timeText(st.Created), timeText(st.Started))
			}
			return tw.Flush()
		},
	}
}

func appStatusCommand() *cli.Command {
	return &cli.Command{
		Name:            "status",
		Usage:           "show the state of one app of a pod",
		ArgsUsage:       "UUID --app=NAME [--format=table|json|json-pretty]",
		SkipFlagParsing: true,
		Description: `Prints the app's state (created, running, exited, or unknown when the pod stopped
while it ran), the host pid of its main process while it runs, its exit code once it has
exited, and when it was created, started and finished. --format=json prints the same as
one JSON object (name, state, image, imageID, pid, exitCode, createdAt, startedAt,
finishedAt).`,
		Action: func(c *cli.Context) error {
			g := globals(c)
			a, err := appCmd(c, []string{"app", "format"}, true)
			if err != nil || a.pos == nil {
				return err
			}
			format, err := appFormat(a)
			if err != nil {
				return err
			}
			st, err := apps.StatusOf(c.Context, g.Dir, a.pos[0], a.flags["app"])
			if err != nil {
				return err
			}
			if isJSONFormat(format) {
				return writeJSONAs(g.Stdout, st, format)
			}
			pid := ""
			if st.PID > 0 {
				pid = strconv.Itoa(st.PID)
			}
			for _, kv := range [][2]string{
				{"name", st.Name},
				{"state", string(st.State)},
				{"image", st.Image},
				{"image-id", st.ImageID},
				{"pid", pid},
				{"exit-code", exitText(st.ExitCode)},
				{"created", timeText(st.Created)},
				{"started", timeText(st.Started)},
				{"finished", timeText(st.Finished)},
			} {
				if _, err := fmt.Fprintf(g.Stdout, "%s=%s\n", kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func appExecCommand() *cli.Command {
	return &cli.Command{
		Name:            "exec",
		Usage:           "run a command in an app of a running pod",
		ArgsUsage:       "UUID --app=NAME -- CMD [ARGS...]",
		SkipFlagParsing: true,
		Description: `Runs CMD in the app, confined as "nscn enter" confines it (the app's namespaces,
capabilities, seccomp filter, cgroups and user), with the terminal and standard streams
attached, and exits with CMD's status.`,
		Action: func(c *cli.Context) error {
			g := globals(c)
			a, err := appCmd(c, []string{"app"}, true)
			if err != nil || a.pos == nil {
				return err
			}
			if len(a.cmd) == 0 {
				return usageErrorf("app exec: no command (give it after --)")
			}
			return enterPod(c, g, a.pos[0], a.flags["app"], a.cmd)
		},
	}
}

func exitText(p *int) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(*p)
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}
