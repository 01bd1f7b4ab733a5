package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/nosecone/nscn/internal/timeline"
)

// timelineNote runs argv once more with the timeline on (after prepare,
// a shell script, untimed) and adds its phases as a note of figure fig,
// so that a reader sees where the figure's time goes. A failure is a
// note too: the figure's own rows stand without it.
func (b *bencher) timelineNote(ctx context.Context, fig, prepare string, argv []string) {
	if prepare != "" {
		if err := runQuiet(ctx, "sh", "-c", prepare); err != nil {
			b.r.note("%s: no timeline: %v", fig, err)
			return
		}
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...) //nolint:gosec // G204: the bench runs the nscn under test
	cmd.Env = append(os.Environ(), timeline.EnvEnable+"=1")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.r.note("%s: no timeline: %s: %v", fig, shellJoin(argv), err)
		return
	}
	text, err := formatTimeline(stderr.String())
	if err != nil {
		b.r.note("%s: no timeline: %v", fig, err)
		return
	}
	b.r.note("%s: timeline of one run (NSCN_TIMELINE=1; offset from stage0's start, step from the phase before, process, phase):\n\n%s", fig, text)
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
