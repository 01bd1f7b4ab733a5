// Package units turns a pod into the systemd units that stage1-nspawn
// writes into the pod's /etc/systemd/system before it boots systemd as the
// pod's pid 1 (systemd.unit(5), systemd.service(5)):
//
//   - default.target wants one service per app;
//   - app-NAME.service prepares the app's mounts and runs the app in its
//     own PID and mount namespaces, pivoted into its rootfs, through the
//     app helper (ExecStart=; with
//     a pre-start handler the mounts and the handler are ExecStartPre=
//     steps before it), and records its status (ExecStopPost=). The helper's "reap" mode
//     also ends the pod when the app failed or was the last one running;
//   - shutdown.target, nscn-exit.service and the halt, poweroff, reboot
//     and exit targets stop the apps in order and then make systemd exit,
//     which ends the container.
//
// The stage1 image ships no unit files of its own: these are all the
// units the pod's systemd knows. No string from the pod manifest reaches a
// unit except app names, which appc restricts to [a-z0-9-] and which are
// checked again here.
//
// It is pure: no I/O, no privileges. It runs in stage1 (run, host side).
package units

import (
	"fmt"
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
	// Limits are the app's resource limits for the pod's systemd to set
	// on the unit's cgroup (MemoryMax=, CPUQuota=, CPUWeight=): on a
	// unified (cgroup v2) host, where the pod's cgroup subtree is
	// delegated to it. Zero on a v1 host, where run makes the app's
	// cgroups itself.
	Limits cgroup.Limits
}

// Config is the input of Generate.
type Config struct {
	Apps []App
	// Helper is the app helper's path in the pod.
	Helper string
}

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

// Generate returns the pod's units, sorted by name.
func Generate(c Config) ([]File, error) {
	if len(c.Apps) == 0 {
		return nil, errdefs.InvalidArgument("no apps to write units for")
	}
	if err := checkPath(c.Helper); err != nil {
		return nil, err
	}
	var files []File
	var wants []string
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
		wants = append(wants, ServiceName(a.Name))
		files = append(files, File{Name: ServiceName(a.Name), Content: service(c, a)})
	}
	files = append(files, File{Name: "default.target", Content: unit(
		"[Unit]",
		"Description=Nose Cone pod",
		"Wants="+strings.Join(wants, " "),
		"AllowIsolate=yes",
	)})
	files = append(files, File{Name: "shutdown.target", Content: unit(
		"[Unit]",
		"Description=Stop the pod's apps",
		"DefaultDependencies=no",
		"RefuseManualStart=yes",
	)})
	// Started once the apps are stopped; its success makes systemd exit,
	// and so the container.
	files = append(files, File{Name: "nscn-exit.service", Content: unit(
		"[Unit]",
		"Description=End the pod",
		"DefaultDependencies=no",
		"Requires=shutdown.target",
		"After=shutdown.target",
		"SuccessAction=poweroff-force",
		"",
		"[Service]",
		"Type=oneshot",
	)})
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
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

func service(c Config, a App) string {
	lines := []string{
		"[Unit]",
		"Description=App " + a.Name,
		"DefaultDependencies=no",
		"Conflicts=shutdown.target",
		"Before=shutdown.target",
		"",
		"[Service]",
		"Type=" + serviceType(a),
		"Restart=no",
	}
	if a.PreStart {
		// The mounts first, then the handler in them, then the app.
		lines = append(lines,
			fmt.Sprintf("ExecStartPre=%s prepare %s", c.Helper, a.Name),
			fmt.Sprintf("ExecStartPre=%s pre-start %s", c.Helper, a.Name),
			fmt.Sprintf("ExecStart=%s exec %s", c.Helper, a.Name))
	} else {
		// One helper process makes the mounts and becomes the app: a
		// separate prepare step costs a process start per pod start.
		// It says READY=1 just before it execs the app, so the unit,
		// and the pod, are started only once the mounts are made.
		lines = append(lines,
			fmt.Sprintf("ExecStart=%s run %s", c.Helper, a.Name),
			"NotifyAccess=main")
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
	default:
		lines = append(lines,
			"StandardInput=null",
			"StandardOutput=file:"+a.Stdout,
			"StandardError=file:"+a.Stderr,
		)
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

// serviceType is the unit's Type=: notify when the helper's run mode
// says READY=1 itself, simple after ExecStartPre= steps.
func serviceType(a App) string {
	if a.PreStart {
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
