package logstyle

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestStyle(t *testing.T) {
	tests := []struct {
		name  string
		debug bool
		log   func(l *slog.Logger)
		want  string // the line, without the time
		level slog.Level
	}{
		{name: "plain", log: func(l *slog.Logger) { l.Info("hello", "k", "v") }, want: `level=INFO msg=hello k=v`},
		{name: "key again", log: func(l *slog.Logger) {
			l.With("pod", "p", "app", "a").With("mode", "run").Info("x", "app", "b", "path", "/p")
		}, want: `level=INFO msg=x pod=p app=b mode=run path=/p`},
		{name: "key again in With", log: func(l *slog.Logger) { l.With("app", "a").With("app", "a").Warn("y") }, want: `level=WARN msg=y app=a`},
		{name: "group", log: func(l *slog.Logger) { l.With("app", "a").WithGroup("g").Info("z", "app", "b") }, want: `level=INFO msg=z app=a g.app=b`},
		{name: "below level", log: func(l *slog.Logger) { l.Debug("hidden") }, want: ""},
		{name: "debug shows time", debug: true, level: slog.LevelDebug, log: func(l *slog.Logger) { l.Debug("shown", "k", 1) }, want: `level=DEBUG msg=shown k=1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			level := tt.level
			if !tt.debug {
				level = slog.LevelInfo
			}
			tt.log(New(&b, level, tt.debug))
			got := strings.TrimSuffix(b.String(), "\n")
			if tt.debug {
				if !strings.HasPrefix(got, "time=") {
					t.Fatalf("debug line %q has no time", got)
				}
				got = got[strings.Index(got, " ")+1:]
			} else if strings.Contains(got, "time=") {
				t.Fatalf("line %q has a time without --debug", got)
			}
			if got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
