package main

import (
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/stage0/cli"
)

// complete runs the generated bash completion as bash's completion would
// for the command line words (the last one being completed) and returns
// the candidates.
func complete(t *testing.T, script string, words []string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, shellQuote(w))
	}
	prog := `source "$1"
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_nscn
printf '%s\n' "${COMPREPLY[@]}"`
	out, err := exec.CommandContext(t.Context(), "bash", "--norc", "--noprofile", "-c", prog, "bash", script).CombinedOutput() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	if err != nil {
		t.Fatalf("bash completion of %q: %v\n%s", words, err, out)
	}
	return strings.Fields(string(out))
}

func generate(t *testing.T, args ...string) {
	t.Helper()
	if err := run(args, io.Discard); err != nil {
		t.Fatalf("nscn-gendoc %q: %v", args, err)
	}
}

func TestBashCompletion(t *testing.T) {
	script := filepath.Join(t.TempDir(), "nscn")
	generate(t, "-bash", script)

	tests := []struct {
		name  string
		words []string
		want  []string // exactly, when exact
		has   []string // among the candidates otherwise
		exact bool
	}{
		{name: "command prefix", words: []string{"nscn", "im"}, want: []string{"image"}, exact: true},
		{name: "subcommand", words: []string{"nscn", "image", "l"}, want: []string{"list"}, exact: true},
		{name: "after a global flag", words: []string{"nscn", "--debug", "image", "re"}, want: []string{"render"}, exact: true},
		{name: "global flags", words: []string{"nscn", "--de"}, want: []string{"--debug"}, exact: true},
		{name: "subcommand flag", words: []string{"nscn", "image", "list", "--fo"}, want: []string{"--format"}, exact: true},
		{name: "run parses its own flags", words: []string{"nscn", "run", "--vol"}, want: []string{"--volume"}, exact: true},
		{name: "prepare too", words: []string{"nscn", "prepare", "--stage1-"}, has: []string{"--stage1-path", "--stage1-from-dir"}},
		{name: "leaf has no subcommands", words: []string{"nscn", "gc", ""}, exact: true},
		{name: "unknown prefix", words: []string{"nscn", "zz"}, exact: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := complete(t, script, tt.words)
			if tt.exact && !slices.Equal(got, tt.want) {
				t.Fatalf("completing %q = %q, want %q", tt.words, got, tt.want)
			}
			for _, h := range tt.has {
				if !slices.Contains(got, h) {
					t.Fatalf("completing %q = %q, want %q among them", tt.words, got, h)
				}
			}
		})
	}

	// Every visible command of the tree is offered: the script follows
	// the tree, whatever commands are added later.
	got := complete(t, script, []string{"nscn", ""})
	for _, c := range cli.NewApp(nil, io.Discard, io.Discard).Commands {
		if !c.Hidden && !slices.Contains(got, c.Name) {
			t.Errorf("command %s not completed; got %q", c.Name, got)
		}
	}
}

func TestZshCompletion(t *testing.T) {
	zsh := testutil.RequiresCommand(t, "zsh")
	script := filepath.Join(t.TempDir(), "_nscn")
	generate(t, "-zsh", script)
	out, err := exec.CommandContext(t.Context(), zsh, "-n", script).CombinedOutput() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	if err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	// The lookup functions, run by zsh: subcommands with their usage.
	prog := `eval "$(sed '/^_nscn "\$@"$/d' "$1")"; _nscn_commands image; _nscn_flags "image list"`
	out, err = exec.CommandContext(t.Context(), zsh, "-f", "-c", prog, "zsh", script).CombinedOutput() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	for _, want := range []string{"list:list the images in the store", "--format:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("zsh lookups print\n%s\nwant a line starting %q", out, want)
		}
	}
}

func TestUsage(t *testing.T) {
	if err := run(nil, io.Discard); err == nil {
		t.Fatal("no flags: want an error")
	}
	if err := run([]string{"-bash", "x", "extra"}, io.Discard); err == nil {
		t.Fatal("an argument: want an error")
	}
}
