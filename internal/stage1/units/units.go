// Package units turns a pod into the systemd units that stage1-nspawn
// writes into the pod's /etc/systemd/system before it boots systemd as the
// pod's pid 1 (systemd.unit(5), systemd.service(5)):
//
//   - default.target wants one service per app;
//   - app-NAME.service prepares the app's mounts and runs the app in its
//     own PID and mount namespaces, pivoted into its rootfs, through the
//     app helper (ExecStart=; with
//     a pre-start handler the pod root's seal and the handler are
//     ExecStartPre= steps before it; each step that needs the app's tree
//     makes it in a mount namespace of its own), which records the app's status and ends the pod
//     when the app failed or was the last one running; the helper's
//     "reap" mode (ExecStopPost=) does it again after a post-stop
//     handler, or when the helper could not;
//   - shutdown.target, nscn-exit.service and the halt, poweroff, reboot
//     and exit targets stop the apps in order and then make systemd exit,
//     which ends the container;
//   - with Config.Journal, systemd-journald.socket and .service: the pod's
//     journald, which keeps the apps' output in the pod's
//     /var/log/journal from its start, started beside the apps and
//     synced before the pod ends, by nscn-exit.service or by the app
//     helpers, each of which waits for journald to have read its app's
//     output (Documentation/logging.md).
//
// All but default.target and the apps' units are the same for every pod
// of a flavor (Shared): a flavor's image may ship them in a directory the
// pod's systemd searches (Config.ImageUnits), so that run writes only what
// depends on the pod. No string from the pod manifest reaches a unit
// except app names, which appc restricts to [a-z0-9-] and which are
// checked again here.
//
// It is pure: no I/O, no privileges. It runs in stage1 (run, host side).
package units

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
)

// App is what the units need to know about an app.
type App struct {
	Name     string
	PreStart bool // the app has a pre-start event handler
	PostStop bool // the app has a post-stop event handler
	// Stdout and Stderr are the pod's paths the app writes to (FIFOs run
	// reads). The unit's stdin is /dev/null: an app that reads run's stdin
	// (--interactive without a terminal) opens its FIFO itself, in the
	// helper's exec mode, so that the other commands of the unit (prepare,
	// reap) neither consume its input nor wait for a writer.
	Stdout, Stderr string
	// Console gives the app the pod's console (/dev/console, the
	// terminal systemd-nspawn relays) as its controlling terminal and its
	// stdin, stdout and stderr, instead of the paths above.
	Console bool
	// Notify is set for an app whose image declares
	// appc.io/executor/supports-systemd-notify: the app itself says
	// READY=1 on the NOTIFY_SOCKET it is given, so its unit accepts
	// notifications from any of its processes (NotifyAccess=all), and
	// the unit, and so the pod, is started only once the app is ready.
	Notify bool
	// Sockets are the app's socket-activated ports (appc's
	// socketActivated): systemd listens on them in the pod's network
	// namespace (SocketName) and passes them to the app (LISTEN_FDS),
	// which the pod starts as any other.
	Sockets []Socket
	// Limits are the app's resource limits for the pod's systemd to set
	// on the unit's cgroup (MemoryMax=, CPUQuota=, CPUWeight=): on a
	// unified (cgroup v2) host, where the pod's cgroup subtree is
	// delegated to it. Zero on a v1 host, where run makes the app's
	// cgroups itself.
	Limits cgroup.Limits
}

// Socket is one socket-activated port of an app: Count ports from Port.
type Socket struct {
	Name     string // the port's name, LISTEN_FDNAMES when it is the only one
	Protocol string // "tcp" or "udp"
	Port     uint
	Count    uint // 0 counts as 1
}

// Config is the input of Generate.
type Config struct {
	Apps []App
	// Helper is the app helper's path in the pod.
	Helper string
	// Journal, when set, gives the pod a journald: every app that is not
	// on the console writes to it (StandardOutput=journal), and its
	// helper copies the app's output to Stdout and Stderr as well.
	// Without it the app's unit writes to Stdout and Stderr directly.
	Journal *Journal
	// Mutable is a pod whose apps change while it runs (run's
	// --mutable): it may have no app, and apps come and go as units of
	// their own (AppUnits) that default.target does not want.
	Mutable bool
	// ImageUnits says that the stage1 image ships the units Shared
	// returns for this Journal, in a directory the pod's systemd
	// searches: Generate leaves them out. Each file run creates in the
	// pod's root is a create, and the first in a directory a copy-up,
	// in the stage1 overlay at every start (Documentation/performance.md).
	ImageUnits bool
}

// Journal is where the pod's journald and journalctl are, in the pod.
type Journal struct {
	Journald, Journalctl string
}

// Journal sockets in the pod, as systemd's own units name them
// (systemd-journald.socket(8)): apps' stdout and stderr streams, and
// native and syslog datagrams.
const (
	JournalStdoutSocket = "/run/systemd/journal/stdout"
	JournalNativeSocket = "/run/systemd/journal/socket"
)

// The journald units.
const (
	JournaldSocket  = "systemd-journald.socket"
	JournaldService = "systemd-journald.service"
)

// JournalFlushedFlag is journald's record that it has flushed to
// /var/log/journal, relative to /run (systemd-journald.service(8)): the
// pod's journald finds it when it starts, and writes there at once.
const JournalFlushedFlag = "systemd/journal/flushed"

// ConsolePath is the pod's console, the terminal of a Console app.
const ConsolePath = "/dev/console"

// File is one unit file.
type File struct {
	Name    string
	Content string
}

// ShutdownTargets are the targets that end the pod. Signals to the pod's
// systemd start them: SIGRTMIN+3 halt, +4 poweroff, +5 reboot.
var ShutdownTargets = []string{"halt.target", "poweroff.target", "reboot.target", "exit.target"}

// appName is appc's AC name (spec/types.md).
var appName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// ServiceName is the unit of the app name.
func ServiceName(app string) string { return "app-" + app + ".service" }

// SocketName is the socket unit of an app with socket-activated ports.
func SocketName(app string) string { return "app-" + app + ".socket" }

// Generate returns the pod's units, sorted by name.
func Generate(c Config) ([]File, error) {
	if len(c.Apps) == 0 && !c.Mutable {
		return nil, errdefs.InvalidArgument("no apps to write units for")
	}
	if err := checkPath(c.Helper); err != nil {
		return nil, err
	}
	var files []File
	var wants []string
	if j := c.Journal; j != nil {
		for _, p := range []string{j.Journald, j.Journalctl} {
			if err := checkPath(p); err != nil {
				return nil, err
			}
		}
		// A mutable pod, which starts with no app (a CRI sandbox), is
		// ready without its journald: its first app's unit wants it,
		// and starts it beside the app, as in any pod (see service).
		// Its sockets listen from the pod's start.
		if c.Mutable {
			wants = append(wants, JournaldSocket)
		} else {
			wants = append(wants, JournaldService)
		}
	}
	for _, a := range c.Apps {
		if !appName.MatchString(a.Name) {
			return nil, errdefs.InvalidArgument("app name %q is not an AC name", a.Name)
		}
		if err := a.Limits.Validate(); err != nil {
			return nil, fmt.Errorf("app %s: %w", a.Name, err)
		}
		if !a.Console {
			for _, p := range []string{a.Stdout, a.Stderr} {
				if err := checkPath(p); err != nil {
					return nil, err
				}
			}
		}
		if len(a.Sockets) > 0 {
			sock, err := socketUnit(a)
			if err != nil {
				return nil, fmt.Errorf("app %s: %w", a.Name, err)
			}
			files = append(files, File{Name: SocketName(a.Name), Content: sock})
		}
		wants = append(wants, ServiceName(a.Name))
		files = append(files, File{Name: ServiceName(a.Name), Content: service(c, a)})
	}
	target := []string{"[Unit]", "Description=Nose Cone pod"}
	if len(wants) > 0 {
		target = append(target, "Wants="+strings.Join(wants, " "))
	}
	files = append(files, File{Name: "default.target", Content: unit(append(target, "AllowIsolate=yes")...)})
	if !c.ImageUnits {
		files = append(files, sharedUnits(c.Journal)...)
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// Shared returns the units that are the same for every pod whose journal
// is j (nil: a pod without journald), sorted by name: the shutdown
// targets, nscn-exit.service, which ends the pod, and journald's socket
// and service. Generate writes them too unless Config.ImageUnits says the
// image has them; they depend on nothing but j, so that an image built
// with them serves every pod of its flavor.
func Shared(j *Journal) ([]File, error) {
	if j != nil {
		for _, p := range []string{j.Journald, j.Journalctl} {
			if err := checkPath(p); err != nil {
				return nil, err
			}
		}
	}
	files := sharedUnits(j)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// sharedUnits are Shared's units, unsorted, for a j whose paths the
// caller has checked.
func sharedUnits(j *Journal) []File {
	var files []File
	if j != nil {
		files = append(files, journalUnits(*j)...)
	}
	files = append(files, File{Name: "shutdown.target", Content: unit(
		"[Unit]",
		"Description=Stop the pod's apps",
		"DefaultDependencies=no",
		"RefuseManualStart=yes",
	)})
	// Started once the apps are stopped; its success makes systemd exit,
	// and so the container.
	exit := []string{
		"[Unit]",
		"Description=End the pod",
		"DefaultDependencies=no",
		"Requires=shutdown.target",
		"After=shutdown.target",
		"SuccessAction=poweroff-force",
		"",
		"[Service]",
		"Type=oneshot",
	}
	if j != nil {
		// A pod that ends while journald is still starting (the apps
		// do not wait for it) ends once it runs, so that it reads
		// what waits in its sockets.
		exit = slices.Insert(exit, 5, "After="+JournaldService)
		// On nscn stop (the shutdown targets): poweroff-force stops no
		// unit, and journald gets systemd-shutdown's SIGTERM with the
		// rest. --sync returns once what was sent before, the apps'
		// last lines included, is on disk. (When the apps end by
		// themselves, the app helper, or its reap mode, powers off
		// at once; journald writes what it has when it gets
		// SIGTERM.)
		exit = append(exit, "ExecStart=-"+j.Journalctl+" --sync")
	}
	files = append(files, File{Name: "nscn-exit.service", Content: unit(exit...)})
	for _, t := range ShutdownTargets {
		files = append(files, File{Name: t, Content: unit(
			"[Unit]",
			"Description=End the pod ("+strings.TrimSuffix(t, ".target")+")",
			"DefaultDependencies=no",
			"Requires=nscn-exit.service",
			"After=nscn-exit.service",
			"AllowIsolate=yes",
		)})
	}
	return files
}

// MountTargets are the targets every mount unit of the pod's systemd
// names in its default dependencies (Before=local-fs.target,
// After=local-fs-pre.target, Conflicts= and Before=umount.target, and
// After=swap.target for a tmpfs), as empty units that nothing starts.
// Each mount an app helper makes in the pod's mount namespace (an app's
// rootfs, /dev, /sys, the cgroups: about 30 per app) becomes a mount
// unit, and each lookup of a unit the pod's systemd did not find makes
// it stat its seven unit directories to see whether its cache is stale:
// about 300 such lookups, 2,100 stats, in a one-app pod, between the
// app's start and the poweroff signal, which the manager then handles
// late (Documentation/performance.md, "nspawn end, the pod's mount
// units"). Found, they are looked up once. The nspawn image ships them
// (stage1/cmd/mkunits) beside Shared's, the kvm image in its one unit
// directory (stage1-kvm/cmd/mkunits); nothing wants or orders them
// but the mount units, and no pod starts umount.target, so they change
// no job.
func MountTargets() []File {
	var files []File
	for _, t := range []string{"local-fs-pre.target", "local-fs.target", "swap.target", "umount.target"} {
		files = append(files, File{Name: t, Content: unit(
			"[Unit]",
			"Description=The pod's mount units' "+t+" (started by nothing)",
			"DefaultDependencies=no",
		)})
	}
	return files
}

// AppUnits returns the units of app a alone, sorted by name: its service
// and, with socket-activated ports, its socket, as Generate writes them
// for a pod of config c. The app/add entrypoint writes them into a
// running mutable pod; the app/start entrypoint starts the service.
func AppUnits(c Config, a App) ([]File, error) {
	c.Apps = []App{a}
	c.Mutable = true
	all, err := Generate(c)
	if err != nil {
		return nil, err
	}
	var out []File
	for _, f := range all {
		if f.Name == ServiceName(a.Name) || f.Name == SocketName(a.Name) {
			out = append(out, f)
		}
	}
	return out, nil
}

// journalUnits are the pod's journald: its sockets, and the service
// socket-activated by the first app that connects, which default.target
// also wants, so that the pod is ready once its journal is (a mutable
// pod's wants the sockets alone: see Generate).
// Unlike systemd's own units, no /dev/log (the apps have a /dev of their
// own) and no audit or kmsg (the pod has neither).
func journalUnits(j Journal) []File {
	return []File{
		{Name: JournaldSocket, Content: unit(
			"[Unit]",
			"Description=Journal sockets of the pod",
			"DefaultDependencies=no",
			"",
			"[Socket]",
			"ListenStream="+JournalStdoutSocket,
			"ListenDatagram="+JournalNativeSocket,
			"SocketMode=0666",
			"PassCredentials=yes",
			"PassSecurity=yes",
			"ReceiveBuffer=8M",
			"Service="+JournaldService,
		)},
		{Name: JournaldService, Content: unit(
			"[Unit]",
			"Description=Journal of the pod",
			"DefaultDependencies=no",
			"Requires="+JournaldSocket,
			"After="+JournaldSocket,
			"",
			"[Service]",
			"Type=notify",
			"Sockets="+JournaldSocket,
			// journald writes to /run/log/journal, gone with the pod,
			// until it has been asked to flush, which it records as
			// /run/systemd/journal/flushed; from then on, and when it
			// finds that flag at its start, it writes to
			// /var/log/journal (the pod directory's journal/). systemd
			// makes the flag (a directory: journald only checks that
			// it exists) before it starts journald, so journald writes
			// there from its first line, and neither journalctl
			// --flush nor the apps wait for it (systemd-journal-flush
			// does that on a host, where /var may come late).
			"RuntimeDirectory="+JournalFlushedFlag,
			"RuntimeDirectoryPreserve=yes",
			// journald takes $RUNTIME_DIRECTORY, which
			// RuntimeDirectory= sets, for its own: it stays
			// /run/systemd/journal, where the sockets are.
			"Environment=RUNTIME_DIRECTORY=/run/"+path.Dir(JournalFlushedFlag),
			"ExecStart="+j.Journald,
			"NotifyAccess=main",
		)},
	}
}

func service(c Config, a App) string {
	lines := []string{
		"[Unit]",
		"Description=App " + a.Name,
		"DefaultDependencies=no",
		"Conflicts=shutdown.target",
		"Before=shutdown.target",
	}
	if c.Journal != nil && !a.Console {
		// The stdout stream socket must be listening when systemd
		// connects the app's output to it. journald itself starts
		// beside the app: what the app writes waits in the socket
		// until journald reads it, into /var/log/journal from the
		// first line (see journalUnits). The pod's end waits for
		// journald instead: each app's helper waits for journald to
		// have read what the app wrote before it records the status
		// (the last one then powers the pod off at once), and
		// nscn-exit.service starts after it.
		lines = append(lines, "Requires="+JournaldSocket, "Wants="+JournaldService, "After="+JournaldSocket)
	}
	if len(a.Sockets) > 0 {
		lines = append(lines, "Requires="+SocketName(a.Name), "After="+SocketName(a.Name))
	}
	lines = append(lines,
		"",
		"[Service]",
		"Type="+serviceType(a),
		"Restart=no",
	)
	if a.PreStart {
		// The pod root's seal first, then the handler, then the app,
		// each of the two in the app's tree, made in a mount namespace
		// of the helper's own (package apphelper).
		lines = append(lines,
			fmt.Sprintf("ExecStartPre=%s prepare %s", c.Helper, a.Name),
			fmt.Sprintf("ExecStartPre=%s pre-start %s", c.Helper, a.Name),
			fmt.Sprintf("ExecStart=%s exec %s", c.Helper, a.Name))
	} else {
		// One helper process makes the mounts and becomes the app: a
		// separate prepare step costs a process start per pod start.
		// It says READY=1 just before it execs the app, so the unit,
		// and the pod, are started only once the mounts are made.
		lines = append(lines, fmt.Sprintf("ExecStart=%s run %s", c.Helper, a.Name))
		if !a.Notify {
			lines = append(lines, "NotifyAccess=main")
		}
	}
	if a.Notify {
		// READY=1 comes from the app, a child of the helper.
		lines = append(lines, "NotifyAccess=all")
	}
	if len(a.Sockets) > 0 {
		// systemd passes them to the helper, which hands them on.
		lines = append(lines, "Sockets="+SocketName(a.Name))
	}
	if a.PostStop {
		lines = append(lines, fmt.Sprintf("ExecStopPost=-%s post-stop %s", c.Helper, a.Name))
	}
	lines = append(lines, fmt.Sprintf("ExecStopPost=%s reap %s", c.Helper, a.Name))
	switch {
	case a.Console:
		// systemd makes the console the app's controlling terminal, so
		// ^C, ^Z and window size changes reach the app's process group.
		lines = append(lines,
			"StandardInput=tty",
			"StandardOutput=tty",
			"StandardError=tty",
			"TTYPath="+ConsolePath,
		)
	case c.Journal != nil:
		// The helper copies what the app writes to the journal and to
		// the FIFOs run reads (io_linux.go in package entrypoint).
		lines = append(lines,
			"StandardInput=null",
			"StandardOutput=journal",
			"StandardError=journal",
		)
	default:
		lines = append(lines,
			"StandardInput=null",
			"StandardOutput=file:"+a.Stdout,
			"StandardError=file:"+a.Stderr,
		)
	}
	if c.Journal != nil && !a.Console {
		// What reaches the unit's own stream is the helper's messages,
		// on its stderr: the app's output has streams of its own.
		lines = append(lines, "SyslogLevel=err")
	}
	lines = append(lines,
		"SyslogIdentifier="+a.Name,
		"TimeoutStopSec=10s",
		// An OOM kill of one of the app's processes (a cgroup v2 memory
		// event) leaves the rest running, as on a v1 host; the unit
		// ends when its main process does.
		"OOMPolicy=continue",
	)
	lines = append(lines, limitLines(a.Limits)...)
	return unit(lines...)
}

// socketUnit is the socket unit of an app's socket-activated ports, one
// Listen line a port, in the pod's network
// namespace on every address (IPv4 and IPv6).
func socketUnit(a App) (string, error) {
	lines := []string{
		"[Unit]",
		"Description=Sockets of app " + a.Name,
		"DefaultDependencies=no",
		"Conflicts=shutdown.target",
		"Before=shutdown.target",
		"",
		"[Socket]",
	}
	for _, sk := range a.Sockets {
		if !appName.MatchString(sk.Name) {
			return "", errdefs.InvalidArgument("port name %q is not an AC name", sk.Name)
		}
		count := max(sk.Count, 1)
		if sk.Port == 0 || sk.Port+count-1 > 65535 {
			return "", errdefs.InvalidArgument("port %s: %d (count %d) is not in 1-65535", sk.Name, sk.Port, count)
		}
		var listen string
		switch sk.Protocol {
		case "tcp":
			listen = "ListenStream="
		case "udp":
			listen = "ListenDatagram="
		default:
			return "", errdefs.InvalidArgument("port %s: protocol %q cannot be socket-activated (tcp or udp)", sk.Name, sk.Protocol)
		}
		for p := sk.Port; p < sk.Port+count; p++ {
			lines = append(lines, fmt.Sprintf("%s%d", listen, p))
		}
	}
	if len(a.Sockets) == 1 {
		// One name for every descriptor of the unit (systemd.socket(5)):
		// an app with several socket-activated ports tells them apart by
		// their addresses, in the order of its manifest.
		lines = append(lines, "FileDescriptorName="+a.Sockets[0].Name)
	}
	lines = append(lines, "BindIPv6Only=both", "Service="+ServiceName(a.Name))
	return unit(lines...), nil
}

// serviceType is the unit's Type=: notify when the helper's run mode
// says READY=1 itself or the app does, simple after ExecStartPre= steps.
func serviceType(a App) string {
	if a.PreStart && !a.Notify {
		return "simple"
	}
	return "notify"
}

// limitLines are the unit settings of l (systemd.resource-control(5)).
// The unit's cgroup holds every process of the unit: the prepare step
// and the event handlers count against the limits as the app does.
func limitLines(l cgroup.Limits) []string {
	var out []string
	if l.MemoryMax > 0 {
		out = append(out, fmt.Sprintf("MemoryMax=%d", l.MemoryMax))
	}
	if l.CPUQuota > 0 {
		// CPUQuota= is a percentage of one CPU with two decimals;
		// systemd turns it back into a quota for the period
		// (cpu.max "QUOTA PERIOD"). Rounded up, so that a quota is
		// never cut below the one asked for.
		period := l.CPUPeriod
		if period == 0 {
			period = cgroup.DefaultCPUPeriod
		}
		pm := (l.CPUQuota*10000 + period - 1) / period // per ten thousand
		out = append(out, fmt.Sprintf("CPUQuota=%d.%02d%%", pm/100, pm%100))
		if period != cgroup.DefaultCPUPeriod {
			out = append(out, fmt.Sprintf("CPUQuotaPeriodSec=%dus", period))
		}
	}
	if l.CPUShares > 0 {
		out = append(out, fmt.Sprintf("CPUWeight=%d", cgroup.SharesToWeight(l.CPUShares)))
	}
	return out
}

// checkPath refuses a path a unit could misread: relative, or holding
// whitespace, quotes, escapes or specifiers.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\n\\%$\"'") {
		return errdefs.InvalidArgument("unit path %q is not a plain absolute path", p)
	}
	return nil
}

func unit(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
