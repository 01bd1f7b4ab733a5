package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/appc/spec/schema"
	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/podlog"
	"github.com/nosecone/nscn/internal/safetext"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// logsPoll is how often logs --follow looks for new records.
const logsPoll = 100 * time.Millisecond

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:         "logs",
		Usage:        "print the output of a pod's apps",
		OnUsageError: onPodUsageError,
		ArgsUsage:    "UUID",
		Description: `Prints what the apps of the pod with the given UUID (or unambiguous UUID
prefix) wrote to their stdout and stderr, as recorded by the pod's stage1 in the
pod directory (logs/APP.log; Documentation/stage1-abi.md). Records are printed
back as the app wrote them: its stdout on nscn's stdout, its stderr on nscn's
stderr. The logs can be read while the pod runs and after it exited, until the
pod is removed by "nscn rm" or "nscn gc".

Without --app, the logs of every app are printed in time order and, when the pod
has several apps, each line starts with "[APP] ". --app=NAME prints one app's
log only, without a prefix.

--timestamps starts each line with the RFC 3339 time (UTC, nanoseconds) at which
the stage1 read its first bytes. --since=DURATION (e.g. 10m, 1h30m) leaves out what
was written longer ago than DURATION; --since=TIME takes an RFC 3339 time (e.g.
2026-01-02T15:04:05Z). --follow keeps printing new output until the pod exits (or
nscn is interrupted, which exits 0).

The stage1-nspawn flavor records every app's output, except that of an
--interactive app on a terminal, which goes to the terminal only. The fly stage1
records nothing: logs then fails and says so (its app's output goes only to the
stdout and stderr of "nscn run").

Exit status: 0; 2 for bad usage (unknown app, bad --since); 254 when the pod is
missing, has not started, or its stage1 records no logs.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "app", Usage: "print the log of this app only"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new output until the pod exits"},
			&cli.BoolFlag{Name: "timestamps", Aliases: []string{"t"}, Usage: "start each line with the time it was written"},
			&cli.StringFlag{Name: "since", Usage: "only output newer than a DURATION ago (10m) or an RFC 3339 TIME"},
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
			return printLogs(c.Context, g, p, logsOptions{
				app: c.String("app"), follow: c.Bool("follow"), timestamps: c.Bool("timestamps"), since: since,
			})
		},
	}
}

type logsOptions struct {
	app        string // empty: every app
	follow     bool
	timestamps bool
	since      time.Time // zero: everything
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

// printLogs prints the logs of a pod's apps, following them if asked.
func printLogs(ctx context.Context, g *Globals, p *pod.Pod, o logsOptions) error {
	switch p.State {
	case pod.Embryo, pod.Preparing, pod.AbortedPrepare, pod.Prepared:
		return errdefs.FailedPrecondition("logs of pod %s: pod is %s and has not started", p.UUID, p.State)
	}
	has, err := p.HasLogs(ctx)
	if err != nil {
		return err
	}
	if !has {
		return errdefs.FailedPrecondition("logs of pod %s: its stage1 (%s) records no app logs; the apps' output went only to the terminal of nscn run",
			p.UUID, stage1Name(p.Path))
	}
	pm, err := p.Manifest(ctx)
	if err != nil {
		return err
	}
	var apps []string
	if o.app != "" {
		a, err := pickApp(pm, p.UUID, o.app)
		if err != nil {
			return err
		}
		apps = []string{a}
	} else {
		for _, a := range pm.Apps {
			apps = append(apps, a.Name.String())
		}
	}
	var m podlog.Merger
	for _, a := range apps {
		f, err := p.OpenAppLog(ctx, a)
		if err != nil {
			return fmt.Errorf("logs of pod %s: %w", p.UUID, err)
		}
		defer func() { _ = f.Close() }()
		pr := &podlog.Printer{Stdout: g.Stdout, Stderr: g.Stderr, Timestamps: o.timestamps}
		if len(pm.Apps) > 1 && o.app == "" {
			pr.Prefix = "[" + a + "] "
		}
		m.Add(podlog.NewReader(f), func(r podlog.Record) error {
			if !o.since.IsZero() && r.Time.Before(o.since) {
				return nil
			}
			return pr.Print(r)
		})
	}
	bad := func(err error) {
		_, _ = fmt.Fprintf(g.Stderr, "nscn: logs: skip a record: %s\n", safetext.Escape(err.Error()))
	}
	for {
		running := false
		if o.follow {
			if err := p.Refresh(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			running = p.State == pod.Running
		}
		// Drain after the state check: what a pod wrote before it was
		// seen exited is printed.
		if err := m.Drain(bad); err != nil {
			return fmt.Errorf("logs of pod %s: %w", p.UUID, err)
		}
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(logsPoll):
		}
	}
}

// stage1Name is the image name of a pod's stage1, for messages.
func stage1Name(podDir string) string {
	b, err := os.ReadFile(filepath.Join(podDir, stage1abi.Stage1ManifestRel)) //nolint:gosec // G304: a file in the pod directory
	if errors.Is(err, fs.ErrNotExist) {
		return "unknown"
	}
	var m schema.ImageManifest
	if err != nil || json.Unmarshal(b, &m) != nil || m.Name.Empty() {
		return "unknown"
	}
	return m.Name.String()
}
