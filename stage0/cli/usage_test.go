package cli

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

// runApp runs nscn in-process with a data directory of its own.
func runApp(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runAppIn(t, filepath.Join(t.TempDir(), "data"), args...)
}

// runAppIn runs nscn in-process with the data directory dir.
func runAppIn(t *testing.T, dir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	app := NewApp(strings.NewReader(""), &out, &errb)
	all := append([]string{"nscn", "--dir", dir}, args...)
	err = app.RunContext(context.Background(), all)
	return out.String(), errb.String(), err
}

func TestUnknownCommandsAndFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the error
	}{
		{name: "unknown command", args: []string{"bogus"}, want: `unknown command "bogus" (see nscn --help)`},
		{name: "unknown subcommand", args: []string{"image", "bogus"}, want: `image: unknown command "bogus" (see nscn image --help)`},
		{name: "help for an unknown command", args: []string{"help", "bogus"}, want: `no command "bogus"`},
		{name: "unknown global flag", args: []string{"--bogus", "list"}, want: "flag provided but not defined: -bogus"},
		{name: "unknown fetch flag", args: []string{"fetch", "--bogus", "x"}, want: "fetch: flag provided but not defined: -bogus"},
		{name: "unknown image list flag", args: []string{"image", "list", "--bogus"}, want: "image list: flag provided but not defined"},
		{name: "flag without its value", args: []string{"fetch", "--signature"}, want: "fetch: flag needs an argument"},
		{name: "bad duration", args: []string{"image", "gc", "--grace-period=soon"}, want: "image gc: invalid value"},
		{name: "bad boolean", args: []string{"list", "--full=maybe"}, want: "invalid boolean value"},
		{name: "unknown trust flag", args: []string{"trust", "--bogus"}, want: "trust: flag provided but not defined"},
		{name: "unknown run flag", args: []string{"run", "--bogus", "img"}, want: "unknown flag --bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runApp(t, tt.args...)
			if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %q, want one line mentioning %q", err, tt.want)
			}
			if stdout != "" {
				t.Fatalf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestHelpStillWorks(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no command", args: nil, want: "COMMANDS:"},
		{name: "help", args: []string{"help"}, want: "COMMANDS:"},
		{name: "help of a command", args: []string{"help", "fetch"}, want: "nscn fetch"},
		{name: "image alone", args: []string{"image"}, want: "list"},
		{name: "image help", args: []string{"image", "--help"}, want: "list"},
		{name: "fetch help", args: []string{"fetch", "--help"}, want: "--pull-policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runApp(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stdout, tt.want) {
				t.Fatalf("stdout = %q, want it to mention %q", stdout, tt.want)
			}
		})
	}
}
