// Package applog reads what the apps of a pod wrote to their stdout and
// stderr, for "nscn logs" and the API service's GetLogs: from the pod's
// systemd journal (stage1-nspawn; read with the host's journalctl) or from
// the log files of a stage1 that writes them (logs/APP.log,
// Documentation/stage1-abi.md), optionally following them until the pod
// exits.
//
// It only reads: it takes no lock and polls the pod's state with
// internal/pod's non-blocking probe. It runs in stage0 and needs read
// access to the pod directory (the nscn group's, Documentation/security.md).
// It does not format records; callers print them (podlog.Printer) or
// send them.
package applog

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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/podlog"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// filePoll is how often a follow looks for new records in log files.
const filePoll = 100 * time.Millisecond

// journalPoll is how often a follow reads a journal again.
const journalPoll = 250 * time.Millisecond

// Options select the records to read.
type Options struct {
	App    string    // empty: every app
	Follow bool      // keep reading until the pod exits or ctx is done
	Since  time.Time // zero: from the start
	Until  time.Time // zero: no end; records at or after it are left out
	Lines  int       // the last Lines records only; 0: all (journal only)
}

// Logs are the logs of the selected apps of one pod, ready to be read.
type Logs struct {
	// Apps are the selected apps, in pod manifest order.
	Apps []string
	// Several is set when every app of a pod with several apps is
	// selected: callers then tell the apps' lines apart ("[APP] ").
	Several bool

	p          *pod.Pod
	o          Options
	journalDir string // "" for log files
	journalctl string
}

// Open checks that the pod has logs to read with o: it started, its
// stage1 records logs, the app exists, and, for a journal, the host has
// journalctl. A pod that cannot have logs (yet) is
// errdefs.ErrFailedPrecondition; an unknown app or Lines on log files
// errdefs.ErrInvalidArgument.
func Open(ctx context.Context, p *pod.Pod, o Options) (*Logs, error) {
	switch p.State {
	case pod.Embryo, pod.Preparing, pod.AbortedPrepare, pod.Prepared:
		return nil, errdefs.FailedPrecondition("logs of pod %s: pod is %s and has not started", p.UUID, p.State)
	}
	if o.Lines < 0 {
		return nil, errdefs.InvalidArgument("logs of pod %s: %d lines is negative", p.UUID, o.Lines)
	}
	jdir, err := p.JournalDir(ctx)
	if err != nil {
		return nil, err
	}
	has := jdir != ""
	if !has {
		if has, err = p.HasLogs(ctx); err != nil {
			return nil, err
		}
	}
	if !has {
		return nil, errdefs.FailedPrecondition("logs of pod %s: its stage1 (%s) records no app logs (it keeps no journal: the fly stage1 has no journald); the apps' output went only to the terminal of nscn run",
			p.UUID, stage1Name(p.Path))
	}
	pm, err := p.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	l := &Logs{p: p, o: o, journalDir: jdir}
	names := make([]string, len(pm.Apps))
	for i, a := range pm.Apps {
		names[i] = a.Name.String()
	}
	if o.App != "" {
		if !slices.Contains(names, o.App) {
			return nil, errdefs.InvalidArgument("pod %s has no app %q (its apps: %s)", p.UUID, o.App, strings.Join(names, ", "))
		}
		l.Apps = []string{o.App}
	} else {
		l.Apps = names
		l.Several = len(names) > 1
	}
	if jdir != "" {
		l.journalctl, err = exec.LookPath("journalctl")
		if err != nil {
			return nil, errdefs.FailedPrecondition("logs of pod %s: reading its journal needs journalctl on the host (Debian: package systemd), which is not in PATH; the journal is in %s", p.UUID, jdir)
		}
	} else if o.Lines > 0 {
		return nil, errdefs.InvalidArgument("logs of pod %s: a number of last lines needs a pod whose stage1 keeps a journal; this pod has log files", p.UUID)
	}
	return l, nil
}

// Read hands each selected record to out, in time order, with the name of
// its app, and each record it cannot parse to bad (which skips it). With
// Follow it returns once the pod is seen exited and its last records are
// read, or when ctx is done (then with nil). The error of out stops it
// and is returned.
func (l *Logs) Read(ctx context.Context, out func(app string, r podlog.Record) error, bad func(error)) error {
	keep := func(t time.Time) bool {
		return (l.o.Since.IsZero() || !t.Before(l.o.Since)) && (l.o.Until.IsZero() || t.Before(l.o.Until))
	}
	if l.journalDir != "" {
		return l.readJournal(ctx, keep, out, bad)
	}
	var m podlog.Merger
	for _, a := range l.Apps {
		f, err := l.p.OpenAppLog(ctx, a)
		if err != nil {
			return fmt.Errorf("logs of pod %s: %w", l.p.UUID, err)
		}
		defer func() { _ = f.Close() }()
		m.Add(podlog.NewReader(f), func(r podlog.Record) error {
			if !keep(r.Time) {
				return nil
			}
			return out(a, r)
		})
	}
	for {
		running, err := l.running(ctx)
		if err != nil {
			return err
		}
		// Drain after the state check: what a pod wrote before it was
		// seen exited is read.
		if err := m.Drain(bad); err != nil {
			return fmt.Errorf("logs of pod %s: %w", l.p.UUID, err)
		}
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(filePoll):
		}
	}
}

// running reports, when following, whether the pod still runs.
func (l *Logs) running(ctx context.Context) (bool, error) {
	if !l.o.Follow {
		return false, nil
	}
	if err := l.p.Refresh(ctx); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false, nil
		}
		return false, err
	}
	return l.p.State == pod.Running, nil
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

// readJournal reads the records of the apps from the pod's journal
// (stage1abi.JournalDir). It runs the host's journalctl: stage0 is built
// without cgo (no sd-journal), and the stage1 image's own journalctl is
// the stage1's business (its loader and libraries), not part of the ABI.
// journalctl reads journal files of any version up to its own; the pod's
// journald is a host's systemd of the same era (Documentation/logging.md).
//
// Follow runs journalctl again every journalPoll after the last cursor,
// instead of journalctl --follow: so that the last records of the pod,
// written just before it is seen exited, are still read, and the pod's
// end is noticed without a journal of the host to watch.
func (l *Logs) readJournal(ctx context.Context, keep func(time.Time) bool, out func(string, podlog.Record) error, bad func(error)) error {
	selected := make(map[string]bool, len(l.Apps))
	for _, a := range l.Apps {
		selected[a] = true
	}
	cursor := ""
	for {
		running, err := l.running(ctx)
		if err != nil {
			return err
		}
		// Read after the state check: what a pod wrote before it was
		// seen exited is read.
		args := journalArgs(l.journalDir, l.Apps, l.o, cursor)
		next, err := runJournalctl(ctx, l.journalctl, args, func(e podlog.JournalEntry) error {
			if !selected[e.App] || !keep(e.Time) {
				return nil
			}
			return out(e.App, e.Record)
		}, bad)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("logs of pod %s: %w", l.p.UUID, err)
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
func journalArgs(dir string, apps []string, o Options, cursor string) []string {
	args := []string{
		"--directory=" + dir, "--no-pager", "--quiet", "--all", "--output=json",
		"--output-fields=" + strings.Join(podlog.JournalFields, ","),
	}
	switch {
	case cursor != "":
		args = append(args, "--after-cursor="+cursor)
	case o.Lines > 0:
		args = append(args, "--lines="+strconv.Itoa(o.Lines))
	}
	if !o.Since.IsZero() && cursor == "" {
		// Whole seconds, rounded down: the exact bound is applied to
		// each record.
		args = append(args, "--since=@"+strconv.FormatInt(o.Since.Unix(), 10))
	}
	if !o.Until.IsZero() {
		// Rounded up, for the same reason.
		args = append(args, "--until=@"+strconv.FormatInt(o.Until.Add(time.Second-1).Unix(), 10))
	}
	args = append(args, "_TRANSPORT=stdout")
	for _, a := range apps {
		// Matches of one field are or'ed (journalctl(1)).
		args = append(args, "_SYSTEMD_UNIT=app-"+a+".service")
	}
	return args
}

// runJournalctl runs journalctl with args and hands each entry to out,
// in the journal's order, and each line it cannot parse to bad. It
// returns the cursor of the last entry ("" when none).
func runJournalctl(ctx context.Context, journalctl string, args []string, out func(podlog.JournalEntry) error, bad func(error)) (string, error) {
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
