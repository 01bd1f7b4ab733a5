package apphelper

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestDeferLog(t *testing.T) {
	tests := []struct {
		name        string
		log         func(l *slog.Logger)
		before      string // what the output holds before the flush
		after       string // and after it, in this order
		afterAppend string // what a line logged after the flush adds
	}{
		{
			name: "held until the flush, in order, with the attributes of each logger",
			log: func(l *slog.Logger) {
				l.Debug("one")
				l.With("app", "a").Info("two", "k", 1)
				l.WithGroup("g").Warn("three", "k", 2)
			},
			after:       "level=DEBUG msg=one\nlevel=INFO msg=two app=a k=1\nlevel=WARN msg=three g.k=2\n",
			afterAppend: "level=INFO msg=later\n",
		},
		{
			name:        "nothing logged",
			log:         func(*slog.Logger) {},
			afterAppend: "level=INFO msg=later\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			base := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{
				Level: slog.LevelDebug,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			}))
			l, flush := deferLog(base)
			tt.log(l)
			if got := out.String(); got != tt.before {
				t.Fatalf("before the flush: got %q, want %q", got, tt.before)
			}
			flush()
			if got := out.String(); got != tt.after {
				t.Fatalf("after the flush: got %q, want %q", got, tt.after)
			}
			l.Info("later")
			if got := strings.TrimPrefix(out.String(), tt.after); got != tt.afterAppend {
				t.Errorf("after the flush, a new line: got %q, want %q", got, tt.afterAppend)
			}
		})
	}
}

func TestDeferLogKeepsTheRecordTime(t *testing.T) {
	var out bytes.Buffer
	l, flush := deferLog(slog.New(slog.NewJSONHandler(&out, nil)))
	l.Info("x")
	time.Sleep(20 * time.Millisecond)
	flushed := time.Now()
	flush()
	var line struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("decode %q: %v", out.String(), err)
	}
	// The line says when it was logged, not when it was written.
	if d := flushed.Sub(line.Time); d < 20*time.Millisecond {
		t.Errorf("the line's time is %v before the flush, want at least 20ms", d)
	}
}
