package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBoardDrawsOneLinePerBar(t *testing.T) {
	var out bytes.Buffer
	b := newTestBoard(&out, 60)
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	bars := []*Bar{New(b.Slot(nil), "layer a", 100), New(b.Slot(nil), "layer b", 200)}
	for _, bar := range bars {
		bar.now = clock
		bar.start = now
	}
	bars[0].Add(50)
	bars[1].Add(200)
	now = now.Add(time.Second)
	bars[1].Done()
	bars[0].Add(50)
	bars[0].Done()
	if len(b.lines) != 2 || !strings.Contains(b.lines[0], "layer a") || !strings.Contains(b.lines[0], "100%") || !strings.Contains(b.lines[1], "layer b") {
		t.Fatalf("lines %q", b.lines)
	}
	// Each redraw goes back over the lines drawn before.
	if !strings.Contains(out.String(), "\x1b[2A") {
		t.Fatalf("no cursor-up in %q", out.String())
	}
	for _, l := range b.lines {
		if len([]rune(l)) >= 60 {
			t.Errorf("line %q is not fitted to 60 columns", l)
		}
	}
}

func TestBoardNilIsPlain(t *testing.T) {
	var out bytes.Buffer
	var b *Board
	if got := b.Slot(&out); got != &out {
		t.Fatal("a nil board's slot is not the writer")
	}
	if NewBoard(&out) != nil {
		t.Fatal("a board on a buffer")
	}
}
