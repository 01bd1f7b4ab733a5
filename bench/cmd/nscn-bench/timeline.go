package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/nosecone/nscn/internal/timeline"
)

// timelineNote runs argv once more with the timeline on (after prepare,
// a shell script, untimed) and adds its phases as a note of figure fig,
// so that a reader sees where the figure's time goes. The base is set
// here, just before the start of the command (NSCN_TIMELINE_BASE), so the
// timeline also shows stage0's exec and runtime start (its
// process-started) and, as the harness's "exited", the end of the
// command after the last phase. A failure is a note too: the figure's own
// rows stand without it.
func (b *bencher) timelineNote(ctx context.Context, fig, prepare string, argv []string) {
	if prepare != "" {
		if err := runQuiet(ctx, "sh", "-c", prepare); err != nil {
			b.r.note("%s: no timeline: %v", fig, err)
			return
		}
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...) //nolint:gosec // G204: the bench runs the nscn under test
	cmd.Stderr = &stderr
	base := timeline.Monotonic()
	cmd.Env = append(os.Environ(), timeline.EnvEnable+"=1", timeline.EnvBase+"="+strconv.FormatInt(int64(base), 10))
	if err := cmd.Run(); err != nil {
		b.r.note("%s: no timeline: %s: %v", fig, shellJoin(argv), err)
		return
	}
	end := timeline.Monotonic() - base
	text, err := formatTimeline(stderr.String() + exitedLine(end))
	if err != nil {
		b.r.note("%s: no timeline: %v", fig, err)
		return
	}
	b.r.note("%s: timeline of one run (NSCN_TIMELINE=1; offset from the harness's start of the command, step from the phase before, process, phase; the harness's exited is the command's end):\n\n%s", fig, text)
}

// exitedLine is the timeline line of the harness that marks the end of
// the command, at offset end from the base.
func exitedLine(end time.Duration) string {
	return fmt.Sprintf("%s%+.3fms harness exited\n", timeline.Prefix, float64(end)/float64(time.Millisecond))
}

// formatTimeline turns a run's stderr into the indented table of its
// timeline lines.
func formatTimeline(stderr string) (string, error) {
	pts, err := timeline.Parse(strings.NewReader(stderr))
	if err != nil {
		return "", err
	}
	if len(pts) == 0 {
		return "", fmt.Errorf("the run printed no timeline")
	}
	var out strings.Builder
	if err := timeline.Format(&out, pts); err != nil {
		return "", err
	}
	return "      " + strings.ReplaceAll(strings.TrimRight(out.String(), "\n"), "\n", "\n      "), nil
}
