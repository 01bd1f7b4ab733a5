package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/podlog"
	"github.com/nosecone/nscn/internal/safetext"
	"github.com/nosecone/nscn/stage0/applog"
)

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:         "logs",
		Usage:        "print the output of a pod's apps",
		OnUsageError: onPodUsageError,
		ArgsUsage:    "UUID",
		Description: `Prints what the apps of the pod with the given UUID (or unambiguous UUID
prefix) wrote to their stdout and stderr: its stdout on nscn's stdout, its
stderr on nscn's stderr. The logs can be read while the pod runs and after it
exited, until the pod is removed by "nscn rm" or "nscn gc".

The stage1-nspawn flavor keeps the apps' output in the pod's systemd journal,
in the pod directory (journal/MACHINE-ID, the pod UUID without its dashes), and
links the host's /var/log/journal/MACHINE-ID to it: logs reads it by running
the host's journalctl --directory (journalctl must be installed; the journal
files are read as they are, with no daemon). Each app's records carry
_SYSTEMD_UNIT=app-APP.service and SYSLOG_IDENTIFIER=APP, and priority 3 (err)
for stderr, 6 (info) for stdout, so that journalctl -D DIR, or journalctl -M
nscn-UUID while the pod runs on a systemd host, reads them too
(Documentation/logging.md). The output of an --interactive app on a terminal
goes to the terminal only and is not recorded.

The fly stage1 has no journald and records nothing: logs then fails and says
so (its app's output goes only to the stdout and stderr of "nscn run"). A pod
whose stage1 writes log files instead (logs/APP.log, Documentation/stage1-abi.md)
is read from them.

Without --app, the logs of every app are printed in time order and, when the pod
has several apps, each line starts with "[APP] ". --app=NAME prints one app's
log only, without a prefix.

--lines=N prints the last N lines only. --timestamps starts each line with the
RFC 3339 time (UTC) at which the line was recorded. --since=DURATION (e.g. 10m,
1h30m) leaves out what was written longer ago than DURATION; --since=TIME takes
an RFC 3339 time (e.g. 2026-01-02T15:04:05Z). --follow keeps printing new output
until the pod exits (or nscn is interrupted, which exits 0).

Exit status: 0; 2 for bad usage (unknown app, bad --since); 254 when the pod is
missing, has not started, its stage1 records no logs, or journalctl is missing.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "app", Usage: "print the log of this app only"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new output until the pod exits"},
			&cli.BoolFlag{Name: "timestamps", Aliases: []string{"t"}, Usage: "start each line with the time it was written"},
			&cli.StringFlag{Name: "since", Usage: "only output newer than a DURATION ago (10m) or an RFC 3339 TIME"},
			&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Usage: "print the last `N` lines only (0: all)"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() != 1 {
				return usageErrorf("logs: exactly one pod UUID is required")
			}
			var since time.Time
			if s := c.String("since"); s != "" {
				var err error
				if since, err = parseSince(s, time.Now()); err != nil {
					return err
				}
			}
			p, err := pod.Get(c.Context, g.Dir, c.Args().First())
			if err != nil {
				return err
			}
			if c.Int("lines") < 0 {
				return usageErrorf("logs: --lines=%d is negative", c.Int("lines"))
			}
			return printLogs(c.Context, g, p, logsOptions{
				app: c.String("app"), follow: c.Bool("follow"), timestamps: c.Bool("timestamps"), since: since,
				lines: c.Int("lines"),
			})
		},
	}
}

type logsOptions struct {
	app        string // empty: every app
	follow     bool
	timestamps bool
	since      time.Time // zero: everything
	lines      int       // 0: every line
}

// parseSince parses --since: a duration before now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, usageErrorf("logs: --since=%s is negative", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, usageErrorf("logs: --since=%q is neither a duration (10m) nor an RFC 3339 time (2026-01-02T15:04:05Z)", s)
}

// printLogs prints the logs of a pod's apps (package applog), following
// them if asked.
func printLogs(ctx context.Context, g *Globals, p *pod.Pod, o logsOptions) error {
	l, err := applog.Open(ctx, p, applog.Options{App: o.app, Follow: o.follow, Since: o.since, Lines: o.lines})
	if err != nil {
		return err
	}
	printers := make(map[string]*podlog.Printer, len(l.Apps))
	for _, a := range l.Apps {
		pr := &podlog.Printer{Stdout: g.Stdout, Stderr: g.Stderr, Timestamps: o.timestamps}
		if l.Several {
			pr.Prefix = "[" + a + "] "
		}
		printers[a] = pr
	}
	return l.Read(ctx, func(app string, r podlog.Record) error {
		return printers[app].Print(r)
	}, func(err error) {
		_, _ = fmt.Fprintf(g.Stderr, "nscn: logs: skip a record: %s\n", safetext.Escape(err.Error()))
	})
}
