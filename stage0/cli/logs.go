package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// printLogs prints the logs of a pod's apps, following them if asked.
func printLogs(ctx context.Context, g *Globals, p *pod.Pod, o logsOptions) error {
	switch p.State {
	case pod.Embryo, pod.Preparing, pod.AbortedPrepare, pod.Prepared:
		return errdefs.FailedPrecondition("logs of pod %s: pod is %s and has not started", p.UUID, p.State)
	}
	jdir, err := p.JournalDir(ctx)
	if err != nil {
		return err
	}
	has := jdir != ""
	if !has {
		if has, err = p.HasLogs(ctx); err != nil {
			return err
		}
	}
	if !has {
		return errdefs.FailedPrecondition("logs of pod %s: its stage1 (%s) records no app logs (it keeps no journal: the fly stage1 has no journald); the apps' output went only to the terminal of nscn run",
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
	if jdir != "" {
		return printJournal(ctx, g, p, jdir, apps, len(pm.Apps) > 1 && o.app == "", o)
	}
	if o.lines > 0 {
		return usageErrorf("logs: --lines needs a pod whose stage1 keeps a journal; pod %s has log files", p.UUID)
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

// journalPoll is how often logs --follow reads a journal again.
const journalPoll = 250 * time.Millisecond

// printJournal prints the records of apps from the pod's journal in dir
// (stage1abi.JournalDir), following them if asked. It runs the host's
// journalctl: stage0 is built without cgo (no sd-journal), and the
// stage1 image's own journalctl is the stage1's business (its loader and
// libraries), not part of the ABI. journalctl reads journal files of any
// version up to its own; the pod's journald is a host's systemd of the
// same era (Documentation/logging.md).
//
// --follow runs journalctl again every journalPoll after the last
// cursor, instead of journalctl --follow: so that the last records of
// the pod, written just before it is seen exited, are still printed, and
// the pod's end is noticed without a journal of the host to watch.
func printJournal(ctx context.Context, g *Globals, p *pod.Pod, dir string, apps []string, prefix bool, o logsOptions) error {
	journalctl, err := exec.LookPath("journalctl")
	if err != nil {
		return errdefs.FailedPrecondition("logs of pod %s: reading its journal needs journalctl on the host (Debian: package systemd), which is not in PATH; the journal is in %s", p.UUID, dir)
	}
	printers := map[string]*podlog.Printer{}
	for _, a := range apps {
		pr := &podlog.Printer{Stdout: g.Stdout, Stderr: g.Stderr, Timestamps: o.timestamps}
		if prefix {
			pr.Prefix = "[" + a + "] "
		}
		printers[a] = pr
	}
	cursor := ""
	for {
		running := false
		if o.follow {
			if err := p.Refresh(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			running = p.State == pod.Running
		}
		// Read after the state check: what a pod wrote before it was
		// seen exited is printed.
		args := journalArgs(dir, apps, o, cursor)
		next, err := readJournal(ctx, journalctl, args, func(e podlog.JournalEntry) error {
			pr := printers[e.App]
			if pr == nil || (!o.since.IsZero() && e.Time.Before(o.since)) {
				return nil
			}
			return pr.Print(e.Record)
		}, func(err error) {
			_, _ = fmt.Fprintf(g.Stderr, "nscn: logs: skip a record: %s\n", safetext.Escape(err.Error()))
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("logs of pod %s: %w", p.UUID, err)
		}
		if next != "" {
			cursor = next
		}
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(journalPoll):
		}
	}
}

// journalArgs is journalctl's command line for the records of apps in
// dir: their units' stdout and stderr streams (the helper's own messages
// about the app are on its stderr too, as run printed them).
func journalArgs(dir string, apps []string, o logsOptions, cursor string) []string {
	args := []string{
		"--directory=" + dir, "--no-pager", "--quiet", "--all", "--output=json",
		"--output-fields=" + strings.Join(podlog.JournalFields, ","),
	}
	switch {
	case cursor != "":
		args = append(args, "--after-cursor="+cursor)
	case o.lines > 0:
		args = append(args, "--lines="+strconv.Itoa(o.lines))
	}
	if !o.since.IsZero() && cursor == "" {
		// Whole seconds, rounded down: the exact bound is applied to
		// each record.
		args = append(args, "--since=@"+strconv.FormatInt(o.since.Unix(), 10))
	}
	args = append(args, "_TRANSPORT=stdout")
	for _, a := range apps {
		// Matches of one field are or'ed (journalctl(1)).
		args = append(args, "_SYSTEMD_UNIT=app-"+a+".service")
	}
	return args
}

// readJournal runs journalctl with args and hands each entry to out, in
// the journal's order, and each line it cannot parse to bad. It returns
// the cursor of the last entry ("" when none).
func readJournal(ctx context.Context, journalctl string, args []string, out func(podlog.JournalEntry) error, bad func(error)) (string, error) {
	cmd := exec.CommandContext(ctx, journalctl, args...) //nolint:gosec // G204: the host's journalctl, with a pod directory and app names
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("journalctl: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start journalctl: %w", err)
	}
	cursor := ""
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var outErr error
	for sc.Scan() {
		e, err := podlog.ParseJournalEntry(sc.Bytes())
		if err != nil {
			bad(err)
			continue
		}
		if e.Cursor != "" {
			cursor = e.Cursor
		}
		if outErr == nil {
			outErr = out(e)
		}
	}
	scanErr := sc.Err()
	if scanErr != nil {
		_, _ = io.Copy(io.Discard, stdout)
	}
	if err := cmd.Wait(); err != nil {
		return cursor, fmt.Errorf("journalctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if scanErr != nil {
		return cursor, fmt.Errorf("read journalctl's output: %w", scanErr)
	}
	return cursor, outErr
}
