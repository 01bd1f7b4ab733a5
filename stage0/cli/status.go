package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/safetext"
	"github.com/nosecone/nscn/stage0/podview"
)

// statusPoll is how often status --wait looks at the pod again.
const statusPoll = 50 * time.Millisecond

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:         "status",
		Usage:        "print the status of a pod",
		OnUsageError: onPodUsageError,
		ArgsUsage:    "UUID",
		Description: `Prints the state of the pod with the given UUID (or unambiguous UUID prefix), one
key=value line each, as rkt does:

   state=exited
   created=2025-01-02T15:04:05.123456789Z
   started=2025-01-02T15:04:06.5Z
   finished=2025-01-02T15:04:09Z
   exited=true
   app-web=0

created, started and finished are RFC 3339 times and are left out while unknown.
pid=PID, ready=true|false and networks=NAME:ip4=ADDR[,NAME:ip4=ADDR...] (as rkt
printed them; NAME:ip6=ADDR for an IPv6 address) are printed while the pod runs. exited=true|false is
printed for a pod that was started. app-NAME=STATUS is printed for each app whose
exit status stage1 recorded; a status above 128 is a death by signal 128+N.
--format=json prints the same object as one element of "nscn list --format=json".

A pod is ready when its apps have started: with the default stage1
(stage1-nspawn), once the pod's systemd has run every app's prepare and
pre-start steps and started the app. A stage1 that cannot tell (fly, and any
stage1 of interface version 7 or older) makes a pod ready once it runs and its
pid is known.

--wait waits until the pod has exited (its lock is released) before printing;
--wait-ready waits until the pod is ready. Without a value they wait for ever;
--wait=DURATION (e.g. --wait=30s; the "=" is required) gives up after DURATION
with an error. --wait-ready fails if the pod ends before it is seen ready. With
both flags, status waits for readiness, then for the exit.

--uuid-file=FILE names the pod by the UUID in FILE (as run --uuid-file-save wrote
it) instead of the argument, as rkt's status did.

status exits 0 whatever the apps' statuses; its own failures exit 254 (2 for bad
usage).`,
		Flags: []cli.Flag{
			uuidFileFlag(),
			&cli.StringFlag{Name: "format", Value: "lines", Usage: "output format: lines (key=value), json (one line) or json-pretty"},
			&cli.GenericFlag{Name: "wait", Value: &waitFlag{}, DefaultText: "off", Usage: "wait until the pod has exited; --wait=DURATION waits at most DURATION"},
			&cli.GenericFlag{Name: "wait-ready", Value: &waitFlag{}, DefaultText: "off", Usage: "wait until the pod's apps have started; --wait-ready=DURATION waits at most DURATION"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			format := c.String("format")
			if format != "lines" && !isJSONFormat(format) {
				return usageErrorf("status: unknown --format %q (want lines, json or json-pretty)", format)
			}
			ref, _, err := onePod(c, "status", 0, "")
			if err != nil {
				return err
			}
			p, err := pod.Get(c.Context, g.Dir, ref)
			if err != nil {
				return err
			}
			if w := c.Generic("wait-ready").(*waitFlag); w.on {
				if err := waitPodReady(c.Context, p, w.timeout); err != nil {
					return err
				}
			}
			if w := c.Generic("wait").(*waitFlag); w.on {
				if err := waitPodExited(c.Context, p, w.timeout); err != nil {
					return err
				}
			}
			v, warnings, err := podview.Read(c.Context, p, true)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				_, _ = fmt.Fprintf(g.Stderr, "nscn: status: %s\n", safetext.Escape(w.Error()))
			}
			if isJSONFormat(format) {
				return writeJSONAs(g.Stdout, toPodJSON(&v), format)
			}
			return writeStatusLines(g.Stdout, &v)
		},
	}
}

// writeStatusLines prints v in rkt's key=value format.
func writeStatusLines(w io.Writer, v *podview.View) error {
	var b strings.Builder
	line := func(k, val string) {
		if val != "" {
			b.WriteString(safetext.Escape(k) + "=" + safetext.Escape(val) + "\n")
		}
	}
	line("state", v.State.String())
	line("created", rfc3339(v.Created))
	line("started", rfc3339(v.Started))
	line("finished", rfc3339(v.Finished))
	if v.PID > 0 {
		line("pid", strconv.Itoa(v.PID))
	}
	if v.Ready != nil {
		line("ready", strconv.FormatBool(*v.Ready))
	}
	if len(v.Networks) > 0 {
		b.WriteString("networks=" + networksString(v.Networks) + "\n")
	}
	switch v.State {
	case pod.Running:
		line("exited", "false")
	case pod.Exited, pod.ExitedGarbage, pod.Garbage, pod.Deleting:
		if !v.Started.IsZero() || !v.Finished.IsZero() {
			line("exited", "true")
		}
	}
	for _, a := range v.Apps {
		if a.Exited {
			line("app-"+a.Name, strconv.Itoa(a.ExitCode))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// waitFlag is the value of --wait and --wait-ready: a flag that may be
// given bare (wait for ever) or with a duration (wait at most that long).
// IsBoolFlag makes the flag package accept the bare form; a value must
// then be attached with "=".
type waitFlag struct {
	on      bool
	timeout time.Duration // 0: no limit
}

// IsBoolFlag lets the flag be given without a value.
func (w *waitFlag) IsBoolFlag() bool { return true }

func (w *waitFlag) Set(s string) error {
	switch s {
	case "true":
		*w = waitFlag{on: true}
		return nil
	case "false":
		*w = waitFlag{}
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q is neither a positive duration (like 30s or 5m) nor true or false", s)
	}
	*w = waitFlag{on: true, timeout: d}
	return nil
}

func (w *waitFlag) String() string {
	switch {
	case w == nil || !w.on:
		return "false"
	case w.timeout == 0:
		return "true"
	}
	return w.timeout.String()
}

// withWaitLimit bounds ctx by timeout, when there is one.
func withWaitLimit(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}

// waitTimedOut classifies a wait that ran out of time as
// errdefs.ErrUnavailable, keeping the cause.
func waitTimedOut(err error, what string, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("%s: gave up after %s: %w", what, timeout, err))
	}
	return err
}

// waitPodExited waits until p is no longer alive: it exited (its lock is
// released), or it was abandoned before it ran. It refreshes p.
func waitPodExited(ctx context.Context, p *pod.Pod, timeout time.Duration) error {
	ctx, cancel := withWaitLimit(ctx, timeout)
	defer cancel()
	what := fmt.Sprintf("wait for pod %s to exit", p.UUID)
	for {
		if err := p.Refresh(ctx); err != nil {
			return waitTimedOut(err, what, timeout)
		}
		switch p.State {
		case pod.Embryo, pod.Preparing, pod.Prepared, pod.Running:
		default:
			return nil
		}
		t := time.NewTimer(statusPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return waitTimedOut(fmt.Errorf("%s: %w", what, ctx.Err()), what, timeout)
		case <-t.C:
		}
	}
}

// waitPodReady waits until p is ready: it runs and, if its stage1 says
// when the apps have started (interface version
// stage1abi.InterfaceVersionReady or newer), has recorded that it is
// ready; for an older stage1, such as fly, once it has recorded its pid. A
// pod that ends first is errdefs.ErrFailedPrecondition. It refreshes p.
func waitPodReady(ctx context.Context, p *pod.Pod, timeout time.Duration) error {
	ctx, cancel := withWaitLimit(ctx, timeout)
	defer cancel()
	what := fmt.Sprintf("wait for pod %s to be ready", p.UUID)
	if _, err := p.WaitPID(ctx); err != nil {
		return waitTimedOut(err, what, timeout)
	}
	notifies, err := podview.Stage1WritesReady(p)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// Once the pod was seen running, running out of time means its apps
	// have not all started, wherever in the poll the deadline struck (a
	// refresh on a loaded host can take the last of it).
	seenRunning := false
	notStarted := func(err error) error {
		if seenRunning && errors.Is(err, context.DeadlineExceeded) {
			return errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("%s: gave up after %s: the pod runs, but its apps have not all started (%w)", what, timeout, err))
		}
		return waitTimedOut(err, what, timeout)
	}
	for {
		if err := p.Refresh(ctx); err != nil {
			return notStarted(err)
		}
		if p.State != pod.Running {
			return errdefs.FailedPrecondition("%s: pod is %s", what, p.State)
		}
		seenRunning = true
		if !notifies {
			return nil
		}
		_, err := p.Ready(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return notStarted(err)
		}
		if !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("%s: %w", what, err)
		}
		t := time.NewTimer(statusPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return notStarted(ctx.Err())
			}
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}
