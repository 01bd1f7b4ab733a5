package cli

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		code  int
		print bool
	}{
		{name: "success", err: nil, code: 0},
		{name: "app status", err: fmt.Errorf("run: %w", ExitStatus(5)), code: 5},
		{name: "already reported", err: ExitStatusErr{Status: 1, Err: errors.New("x")}, code: 1},
		{name: "usage", err: errdefs.InvalidArgument("bad flag"), code: 2, print: true},
		{name: "not found", err: errdefs.NotFound("image"), code: 254, print: true},
		{name: "plain", err: errors.New("boom"), code: 254, print: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, report := exitCode(tt.err)
			if code != tt.code || report != tt.print {
				t.Fatalf("exitCode(%v) = %d, %v; want %d, %v", tt.err, code, report, tt.code, tt.print)
			}
		})
	}
}

func TestReportLine(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "plain", err: errdefs.InvalidArgument("--memory %q is not positive", "-1"), want: `nscn: --memory "-1" is not positive`},
		{name: "newline from a value", err: fmt.Errorf("hostname %s", "a\nb"), want: `nscn: hostname a\x0ab`},
		{name: "escape sequence from a label", err: fmt.Errorf("image %s", "x\x1b[2J"), want: `nscn: image x\x1b[2J`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reportLine(tt.err); got != tt.want {
				t.Fatalf("reportLine = %q, want %q", got, tt.want)
			}
		})
	}
}
