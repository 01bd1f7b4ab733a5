package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/logstyle"
	"github.com/nosecone/nscn/internal/mdsclient"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/networking/portfwd"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/localimage"
	"github.com/nosecone/nscn/stage0/prepare"
	"github.com/nosecone/nscn/stage0/stage1"
)

const runSyntax = `[FLAGS] IMAGE [APPFLAGS] [-- ARGS...] [--- IMAGE [APPFLAGS] [-- ARGS...]]...`

// runFlagsHelp and prepareFlagsHelp are the flag tables for --help, since
// run and prepare parse their own arguments; each lists only the flags its
// command takes. They are rendered once: the command tree is built at
// every nscn start.
var (
	runFlagsHelp     = sync.OnceValue(func() string { return renderRunFlags(onlyRun) })
	prepareFlagsHelp = sync.OnceValue(func() string { return renderRunFlags(onlyPrepare) })
)

func renderRunFlags(cmd string) string {
	names := make([]string, 0, len(runFlagSpecs))
	for n := range runFlagSpecs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, per := range []bool{true, false} {
		if per {
			b.WriteString("\nPer-app flags (after an IMAGE for that app; before the first IMAGE for every app):\n")
		} else {
			b.WriteString("\nPod flags (before the first IMAGE):\n")
		}
		for _, n := range names {
			s := runFlagSpecs[n]
			if s.perApp != per || (s.only != "" && s.only != cmd) {
				continue
			}
			arg := "=VALUE"
			if s.boolean {
				arg = ""
			}
			fmt.Fprintf(&b, "   --%-28s %s\n", n+arg, s.usage)
		}
	}
	return b.String()
}

func runCommand() *cli.Command {
	c := loneRunCommand()
	c.Description += runFlagsHelp()
	return c
}

// loneRunCommand is run's command with its description but without the
// table of its flags, which takes longer to render than the rest of
// run's start up to its flags (fmt, a line per flag). appFor builds it
// for a command line that cannot ask for help (mayNeedTree), the only
// reader of the description.
func loneRunCommand() *cli.Command {
	return &cli.Command{
		Name:            "run",
		Usage:           "run images in a new pod",
		ArgsUsage:       runSyntax,
		SkipFlagParsing: true,
		Description: `Fetches the images (pull policy "new" by default), prepares a pod with one app
per image and executes it with the chosen stage1. nscn run exits with the status of the
first app that failed (0 when all succeeded); its own failures exit 254.

Flags after an IMAGE apply to that app only; flags before the first IMAGE apply to the pod
or, for per-app flags, to every app. "--" starts the app's arguments (appended to its exec),
"---" ends them and starts the next app:

   nscn run --volume data,kind=host,source=/srv IMG --mount volume=data,target=/data \
       --exec=/bin/sh -- -c 'ls /data' --- IMG2
`,
		Action: func(c *cli.Context) error { return runOrPrepare(c, true) },
	}
}

func prepareCommand() *cli.Command {
	return &cli.Command{
		Name:            "prepare",
		Usage:           "prepare a pod to run later with run-prepared",
		ArgsUsage:       runSyntax,
		SkipFlagParsing: true,
		Description: `Like run, but stops once the pod directory is ready and prints the pod's UUID on
stdout. Start it with "nscn run-prepared UUID"; "nscn gc --expire-prepared" removes
prepared pods nobody ran. The flags that apply when the pod runs (--net, --hostname,
--interactive, --ipc, the DNS and metadata service flags) are run-prepared's. --quiet
leaves out the messages on stderr, as rkt's did.
` + prepareFlagsHelp(),
		Action: func(c *cli.Context) error { return runOrPrepare(c, false) },
	}
}

func runPreparedCommand() *cli.Command {
	return &cli.Command{
		Name:      "run-prepared",
		Usage:     "run a prepared pod",
		ArgsUsage: "UUID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "net", Usage: "networks to join: default, host, none or names"},
			&cli.BoolFlag{Name: "interactive", Usage: "attach the terminal to the app"},
			&cli.StringFlag{Name: "hostname", Usage: "the pod's hostname"},
			&cli.StringFlag{Name: "dns-conf-mode", Usage: "resolv=MODE,hosts=MODE for the stage1"},
			&cli.BoolFlag{Name: "mds-register", Usage: "register the pod with the metadata service (default: when it is running)"},
			&cli.StringFlag{Name: "mds-socket", Value: mdsclient.DefaultSocket, Usage: "the metadata service's registration socket"},
			&cli.StringSliceFlag{Name: "dns", Usage: "the apps' nameserver, or host or none"},
			&cli.StringSliceFlag{Name: "dns-search", Usage: "a search domain of the apps' resolv.conf"},
			&cli.StringSliceFlag{Name: "dns-opt", Usage: "an option of the apps' resolv.conf"},
			&cli.StringFlag{Name: "dns-domain", Usage: "the local domain of the apps' resolv.conf"},
			&cli.StringSliceFlag{Name: "hosts-entry", Usage: "an /etc/hosts line for the apps, IP=NAME, or host"},
			&cli.StringFlag{Name: "ipc", Usage: "the pod's IPC namespace: auto, private or parent (flavor-dependent)"},
			&cli.StringFlag{Name: "pid", Usage: "the apps' PID namespace: auto, private or parent (the host's: stage1-nspawn, stage1 interface 15)"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() != 1 {
				return usageErrorf("run-prepared: exactly one UUID is required")
			}
			if err := needRoot("run-prepared"); err != nil {
				return err
			}
			if err := checkIPC(c.String("ipc")); err != nil {
				return err
			}
			if err := checkPID(c.String("pid")); err != nil {
				return err
			}
			if err := checkHostname(c.String("hostname")); err != nil {
				return err
			}
			if err := checkNet(c.String("net")); err != nil {
				return err
			}
			p, err := pod.Get(c.Context, g.Dir, c.Args().First())
			if err != nil {
				return err
			}
			if p.State != pod.Prepared {
				return errdefs.FailedPrecondition("pod %s is %s, not prepared", p.UUID, p.State)
			}
			st, err := openStore(c.Context, g)
			if err != nil {
				return err
			}
			s1, err := stage1.OpenPod(c.Context, st, p.Path)
			if err != nil {
				return err
			}
			m, err := p.Manifest(c.Context)
			if err != nil {
				return err
			}
			dns, err := dnsFlags{
				DNS: c.StringSlice("dns"), Search: c.StringSlice("dns-search"), Opts: c.StringSlice("dns-opt"),
				Domain: c.String("dns-domain"), HostsEntries: c.StringSlice("hosts-entry"), ConfMode: c.String("dns-conf-mode"),
			}.plan()
			if err != nil {
				return err
			}
			if c.Bool("interactive") && len(m.Apps) != 1 {
				return usageErrorf("--interactive needs a pod with exactly one app")
			}
			mo := mdsOptions{Socket: c.String("mds-socket")}
			if c.IsSet("mds-register") {
				mo.Register = strconv.FormatBool(c.Bool("mds-register"))
			}
			return execStage1(c.Context, g, p, *s1, stage1.RunFlags{
				Net:         c.String("net"),
				Interactive: c.Bool("interactive"),
				Hostname:    c.String("hostname"),
				IPC:         c.String("ipc"),
				PID:         c.String("pid"),
			}, dns, mo)
		},
	}
}

// geteuid is os.Geteuid, a seam for the tests that run as root.
var geteuid = os.Geteuid

// needRoot refuses run, prepare and run-prepared for a user other than
// root, before anything is fetched, copied or mounted: they would fail
// half way (mounting the pod's root filesystems, entering namespaces)
// and leave an aborted pod behind, as rkt's did not.
func needRoot(cmd string) error {
	if geteuid() != 0 {
		return errdefs.PermissionDenied("%s: nscn runs pods as root only (run it with sudo; the nscn group may list and inspect them)", cmd)
	}
	return nil
}

// runOrPrepare is run (exec the stage1) and prepare (stop when prepared).
func runOrPrepare(c *cli.Context, run bool) error {
	g := globals(c)
	cmd := onlyPrepare
	if run {
		cmd = onlyRun
	}
	ra, err := parseRunArgs(c.Args().Slice(), cmd)
	if err != nil {
		return err
	}
	if c.Command.Name == sandboxCommandName {
		if err := checkSandboxArgs(ra); err != nil {
			return err
		}
	}
	if ra.wantHelp {
		// The help lookup searches the parent's commands.
		parent := c
		if l := c.Lineage(); len(l) > 1 {
			parent = l[1]
		}
		return cli.ShowCommandHelp(parent, c.Command.Name)
	}
	if err := needRoot(c.Command.Name); err != nil {
		return err
	}
	if err := checkHostname(ra.flag("hostname")); err != nil {
		return err
	}
	if err := checkNet(ra.flag("net")); err != nil {
		return err
	}
	if err := checkIPC(ra.flag("ipc")); err != nil {
		return err
	}
	if err := checkPID(ra.flag("pid")); err != nil {
		return err
	}
	if ra.boolean(nil, "quiet") {
		// rkt's prepare --quiet: the UUID on stdout and nothing else;
		// warnings and errors still go to stderr.
		level := slog.LevelWarn
		if g.Debug {
			level = slog.LevelDebug
		}
		g.Log = logstyle.New(g.Stderr, level, g.Debug)
	}
	opts, sel, err := prepareOptions(g, ra)
	if err != nil {
		return err
	}
	dns, err := dnsFlags{
		DNS: ra.pod["dns"], Search: ra.pod["dns-search"], Opts: ra.pod["dns-opt"],
		Domain: ra.flag("dns-domain"), HostsEntries: ra.pod["hosts-entry"], ConfMode: ra.flag("dns-conf-mode"),
	}.plan()
	if err != nil {
		return err
	}
	if ra.boolean(nil, "interactive") && len(opts.Apps) != 1 {
		return usageErrorf("--interactive needs exactly one app")
	}
	mo := mdsOptions{Register: ra.flag("mds-register"), Socket: ra.flag("mds-socket")}
	if run {
		if err := mo.checkRequired(); err != nil {
			return err
		}
	}
	policy := localimage.PullNew
	if v := ra.flag("pull-policy"); v != "" {
		if policy, err = localimage.ParsePullPolicy(v); err != nil {
			return err
		}
	}
	s, err := openStore(c.Context, g)
	if err != nil {
		return err
	}
	opts.Store = s
	// nscn (the nscn_nofetch build) answers the images from the store
	// alone, and hands the command to nscn-fetch when it cannot; the
	// fetch step's messages wait until that is decided.
	fg, flush := deferredLog(g)
	if opts.Fetcher, err = imageFetcher(c.Context, fg, s, policy, ra.flag("os"), ra.flag("arch")); err != nil {
		flush()
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the nscn binary: %w", err)
	}
	if opts.Stage1, err = stage1.Choose(sel, []string{g.LocalConfig, g.SystemConfig}, filepath.Dir(exe)); err != nil {
		return err
	}
	opts.Timeline = g.Timeline
	prep, err := prepare.Prepare(c.Context, opts)
	if err != nil {
		if err := handOver(c.Context, err); err != nil {
			flush()
			return err
		}
	}
	flush()
	if f := ra.flag("uuid-file-save"); f != "" {
		if err := writeFileAtomic(f, true, strings.NewReader(prep.Pod.UUID+"\n")); err != nil {
			_ = prep.Pod.Unlock()
			return err
		}
	}
	if !run {
		if err := prep.Sync(); err != nil {
			prepare.Discard(context.WithoutCancel(c.Context), prep.Pod, g.Log)
			return err
		}
		if err := prep.Pod.ToPrepared(c.Context); err != nil {
			return err
		}
		_, err := fmt.Fprintln(g.Stdout, prep.Pod.UUID)
		return err
	}
	s1 := stage1.Pod{Tree: prep.Stage1Tree, Entrypoints: prep.Entrypoints}
	if ra.sandbox {
		if err = startSandbox(g, prep); err != nil {
			prepare.Discard(context.WithoutCancel(c.Context), prep.Pod, g.Log)
			return err
		}
	}
	err = execStage1(c.Context, g, prep.Pod, s1, stage1.RunFlags{
		Net:         ra.flag("net"),
		Interactive: ra.boolean(nil, "interactive"),
		Hostname:    ra.flag("hostname"),
		IPC:         ra.flag("ipc"),
		PID:         ra.flag("pid"),
		Mutable:     ra.sandbox,
	}, dns, mo)
	// execStage1 returns only when the stage1 could not be started.
	prepare.Discard(context.WithoutCancel(c.Context), prep.Pod, g.Log)
	return err
}

// execStage1 registers the pod with the metadata service (as mo asks),
// moves it to run/ and replaces nscn with the stage1's run entrypoint
// (from the stage1's tree in the store), handing it the pod lock and the
// DNS files. If it returns, the pod is unregistered again.
func execStage1(ctx context.Context, g *Globals, p *pod.Pod, s1 stage1.Pod, f stage1.RunFlags, dns podDNS, mo mdsOptions) error {
	eps := s1.Entrypoints
	reg, err := registerWithMDS(ctx, g, p, mo)
	if err != nil {
		return err
	}
	if reg.Token != "" {
		defer func() { forgetMDS(context.WithoutCancel(ctx), g, p) }()
		f.MDSToken, f.MDSPort = reg.Token, reg.Port
		if eps.Version < stage1abi.InterfaceVersionMDSTokenFile {
			g.Log.Warn("the stage1 takes the metadata service token in its argv, where any local user can read it", "pod", p.UUID,
				"interface-version", eps.Version, "needed", stage1abi.InterfaceVersionMDSTokenFile)
		} else if err := writeMDSToken(p.Path, reg.Token); err != nil {
			return err
		}
		if eps.Version < stage1abi.InterfaceVersionMDSPort && reg.Port != stage1abi.DefaultMDSPort {
			g.Log.Warn("the stage1 cannot be told the metadata service's port and assumes the default", "pod", p.UUID,
				"port", reg.Port, "default", stage1abi.DefaultMDSPort, "interface-version", eps.Version)
		}
	}
	// The range prepare recorded (--private-users), for run and
	// run-prepared alike.
	ids, err := p.PrivateUsers()
	if err != nil {
		return err
	}
	if !ids.IsZero() {
		f.PrivateUsers = ids.String()
	}
	f.Debug = g.Debug
	f.DNSConfMode = dns.ConfMode
	f.UUID = p.UUID
	f.InterfaceVersion = eps.Version
	f.LocalConfig = g.LocalConfig
	if g.Insecure.Capabilities {
		f.DisableCapabilities = true
	}
	if g.Insecure.Paths {
		f.DisablePaths = true
	}
	if g.Insecure.Seccomp {
		f.DisableSeccomp = true
	}
	args, err := stage1.RunArgs(f)
	if err != nil {
		return err
	}
	if err := dns.write(p.Path); err != nil {
		return fmt.Errorf("write the pod's DNS files: %w", err)
	}
	if err := p.ToRun(ctx); err != nil {
		return err
	}
	fd, err := p.KeepLockOnExec()
	if err != nil {
		return err
	}
	s1.Dir = p.Path // in run/ now
	g.Log.Debug("executing stage1", "pod", p.UUID, "entrypoint", eps.Run, "tree", s1.Tree.Key, "args", redactMDSToken(args))
	g.Timeline.Mark("stage1-exec")
	return s1.ExecRun(args, fd, os.Environ())
}

// prepareOptions turns the parsed command line into prepare options.
func prepareOptions(g *Globals, ra *runArgs) (prepare.Options, stage1.Selection, error) {
	o := prepare.Options{
		DataDir: g.Dir, Log: g.Log, InheritEnv: ra.boolean(nil, "inherit-env"), HostEnv: timeline.Strip(os.Environ()),
		AllCapabilities: g.Insecure.Capabilities, NoOverlay: ra.boolean(nil, "no-overlay"),
		PrivateUsers: ra.boolean(nil, "private-users"),
	}
	sel := stage1.Selection{
		FromDir: ra.flag("stage1-from-dir"),
		Path:    ra.flag("stage1-path"),
		URL:     ra.flag("stage1-url"),
		Name:    ra.flag("stage1-name"),
		Hash:    ra.flag("stage1-hash"),
	}
	for _, v := range ra.pod["volume"] {
		vol, err := types.VolumeFromString(v)
		if err != nil {
			return o, sel, usageErrorf("--volume %q: %v", v, err)
		}
		if err := prepare.CheckVolume(*vol); err != nil {
			return o, sel, fmt.Errorf("--volume %q: %w", v, err)
		}
		o.Volumes = append(o.Volumes, *vol)
	}
	ports, err := parsePorts(ra.pod["port"])
	if err != nil {
		return o, sel, err
	}
	o.Ports = ports
	for _, v := range ra.pod["publish"] {
		ep, err := portfwd.ParsePublish(v)
		if err != nil {
			return o, sel, usageErrorf("--publish: %v", err)
		}
		o.Ports = append(o.Ports, ep)
	}
	if o.UserAnnotations, err = userPairs(ra.pod["user-annotation"], "user-annotation"); err != nil {
		return o, sel, err
	}
	if o.UserLabels, err = userPairs(ra.pod["user-label"], "user-label"); err != nil {
		return o, sel, err
	}
	if pm := ra.flag("pod-manifest"); pm != "" {
		if len(ra.apps) > 0 {
			return o, sel, usageErrorf("--pod-manifest and images on the command line conflict; use one")
		}
		if err := podManifestConflicts(ra); err != nil {
			return o, sel, err
		}
		b, err := os.ReadFile(pm) //nolint:gosec // G304: the --pod-manifest file the user named
		if err != nil {
			return o, sel, errdefs.InvalidArgument("read pod manifest: %v", err)
		}
		if !json.Valid(b) {
			return o, sel, errdefs.InvalidArgument("pod manifest %s is not valid JSON", pm)
		}
		if err := aci.CheckIsolatorValues(b); err != nil {
			return o, sel, fmt.Errorf("pod manifest %s: %w", pm, err)
		}
		var m schema.PodManifest
		if err := json.Unmarshal(b, &m); err != nil {
			return o, sel, errdefs.InvalidArgument("pod manifest %s: %v", pm, err)
		}
		o.PodManifest = &m
		return o, sel, nil
	}
	o.Sandbox = ra.sandbox
	if len(ra.apps) == 0 && !ra.sandbox {
		return o, sel, usageErrorf("name at least one IMAGE (see --help)")
	}
	for i := range ra.apps {
		a := &ra.apps[i]
		app, err := appOptions(ra, a)
		if err != nil {
			return o, sel, fmt.Errorf("image %s: %w", a.image, err)
		}
		o.Apps = append(o.Apps, app)
	}
	return o, sel, nil
}

// podManifestConflicts refuses, as rkt did ("conflicting flags set with
// --pod-manifest"), the flags that would shape the pod manifest when one
// is given whole: --pod-manifest used to drop them silently.
func podManifestConflicts(ra *runArgs) error {
	var set []string
	for name := range ra.pod {
		spec := runFlagSpecs[name]
		switch name {
		case "volume", "port", "publish", "inherit-env", "user-annotation", "user-label":
		default:
			if !spec.perApp {
				continue
			}
		}
		set = append(set, "--"+name)
	}
	if len(set) == 0 {
		return nil
	}
	sort.Strings(set)
	return usageErrorf("conflicting flags set with --pod-manifest: %s (put them in the manifest)", strings.Join(set, ", "))
}

func appOptions(ra *runArgs, a *appArgs) (prepare.App, error) {
	app := prepare.App{
		Image:          a.image,
		Signature:      ra.get(a, "signature"),
		Name:           ra.get(a, "name"),
		Exec:           ra.get(a, "exec"),
		Args:           a.args,
		User:           ra.get(a, "user"),
		Group:          ra.get(a, "group"),
		WorkingDir:     ra.get(a, "working-dir"),
		ReadOnlyRootfs: ra.boolean(a, "readonly-rootfs"),
	}
	if ra.boolean(a, "pid1") {
		app.Annotations = append(app.Annotations, types.Annotation{Name: stage1abi.AnnotationAppPID1, Value: "true"})
	}
	if len(ra.apps) > 1 && len(ra.pod["name"]) > 0 {
		return app, usageErrorf("--name before the first image would give every app the same name; put it after an image")
	}
	if app.Name != "" {
		if err := prepare.CheckAppName(app.Name); err != nil {
			return app, fmt.Errorf("--name: %w", err)
		}
	}
	if app.WorkingDir != "" && !strings.HasPrefix(app.WorkingDir, "/") {
		return app, usageErrorf("--working-dir %q is not an absolute path", app.WorkingDir)
	}
	if v := ra.get(a, "supplementary-gids"); v != "" {
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 0 {
				return app, usageErrorf("--supplementary-gids: %q is not a group ID", s)
			}
			app.SupplementaryGIDs = append(app.SupplementaryGIDs, n)
		}
	}
	for _, f := range ra.all(a, "set-env-file") {
		env, err := readEnvFile(f)
		if err != nil {
			return app, err
		}
		app.Env = append(app.Env, env...)
	}
	for _, flag := range []string{"set-env", "environment"} {
		for _, kv := range ra.all(a, flag) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return app, usageErrorf("--%s %q: want NAME=VALUE", flag, kv)
			}
			if err := prepare.CheckEnvName(k); err != nil {
				return app, fmt.Errorf("--%s: %w", flag, err)
			}
			app.Env = append(app.Env, types.EnvironmentVariable{Name: k, Value: v})
		}
	}

	for _, mnt := range ra.all(a, "mount") {
		m, err := parseMount(mnt)
		if err != nil {
			return app, err
		}
		// A later --mount of a target replaces the earlier one (an
		// app's own --mount overrides the one before the first image),
		// as in rkt; "/data" and "/data/" are one target.
		if i := slices.IndexFunc(app.Mounts, func(o schema.Mount) bool { return o.Path == m.Path }); i >= 0 {
			app.Mounts[i] = m
			continue
		}
		app.Mounts = append(app.Mounts, m)
	}
	isos, err := isolatorFlags(ra, a)
	if err != nil {
		return app, err
	}
	app.Isolators = append(app.Isolators, isos...)
	return app, nil
}

// userPairs parses the NAME=VALUE values of --user-annotation or
// --user-label; a later value of a name replaces an earlier one.
func userPairs(vals []string, flag string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(vals))
	for _, kv := range vals {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--%s %q: want NAME=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

// parseMount parses --mount volume=NAME,target=PATH.
func parseMount(s string) (schema.Mount, error) {
	var m schema.Mount
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "volume":
			n, err := types.NewACName(v)
			if err != nil {
				return m, usageErrorf("--mount %q: volume %q is not a valid name", s, v)
			}
			m.Volume = *n
		case "target":
			m.Path = v
		default:
			return m, usageErrorf("--mount %q: unknown key %q (want volume=NAME,target=PATH)", s, k)
		}
	}
	if m.Volume == "" || m.Path == "" {
		return m, usageErrorf("--mount %q: want volume=NAME,target=PATH", s)
	}
	if !filepath.IsAbs(m.Path) {
		return m, usageErrorf("--mount %q: target must be absolute", s)
	}
	m.Path = filepath.Clean(m.Path)
	return m, nil
}

// readEnvFile reads NAME=VALUE lines; blank lines and comments (# or ;,
// as rkt took them) are skipped.
func readEnvFile(path string) ([]types.EnvironmentVariable, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the --environment file the user named
	if err != nil {
		return nil, errdefs.InvalidArgument("--set-env-file: %v", err)
	}
	defer func() { _ = f.Close() }()
	var out []types.EnvironmentVariable
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--set-env-file %s:%d: want NAME=VALUE", path, n)
		}
		if err := prepare.CheckEnvName(k); err != nil {
			return nil, fmt.Errorf("--set-env-file %s:%d: %w", path, n, err)
		}
		out = append(out, types.EnvironmentVariable{Name: k, Value: v})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// writeMDSToken gives the pod's metadata service token to the stage1 in
// the pod directory (stage1abi.MDSTokenFile), readable by root alone.
func writeMDSToken(podDir, token string) error {
	f, err := os.OpenFile(filepath.Join(podDir, stage1abi.MDSTokenFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600) //nolint:gosec // G304: a file of the pod directory
	if err != nil {
		return fmt.Errorf("hand the metadata token to the stage1: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("hand the metadata token to the stage1: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("hand the metadata token to the stage1: %w", err)
	}
	return nil
}
