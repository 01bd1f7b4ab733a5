package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestAppForBuildsALoneCommandOnlyWhenNothingCanShowTheTree(t *testing.T) {
	tests := []struct {
		name string
		args []string
		lone bool
	}{
		{name: "run", args: []string{"run", "img", "--exec=/bin/true"}, lone: true},
		{name: "global flags in front", args: []string{"--dir", "/d", "--debug", "--insecure-options=image", "run", "img"}, lone: true},
		{name: "global flags after", args: []string{"run", "--dir=/d", "img"}, lone: true},
		{name: "flags that start with h", args: []string{"run", "--hostname=h1", "--hosts-entry=host", "img"}, lone: true},
		{name: "run help", args: []string{"run", "--help"}, lone: false},
		{name: "run -h", args: []string{"run", "-h"}, lone: false},
		{name: "help=true", args: []string{"run", "--help=true"}, lone: false},
		{name: "help among an app's arguments", args: []string{"run", "img", "--exec=/bin/ls", "--", "-h"}, lone: false},
		{name: "help command", args: []string{"help", "run"}, lone: false},
		{name: "h command", args: []string{"h", "run"}, lone: false},
		{name: "completion", args: []string{"run", "--generate-bash-completion"}, lone: false},
		{name: "global help", args: []string{"--help", "run"}, lone: false},
		{name: "another command", args: []string{"list"}, lone: false},
		{name: "run as a global flag's value", args: []string{"--dir", "run", "list"}, lone: false},
		{name: "no command", args: nil, lone: false},
	}
	full := len(NewApp(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}).Commands)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := appFor(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}, append([]string{"nscn"}, tt.args...))
			want := full
			if tt.lone {
				want = 1
			}
			if len(app.Commands) != want {
				t.Fatalf("%d commands, want %d", len(app.Commands), want)
			}
		})
	}
}

// TestLoneCommandsAsInTree checks that each command appFor may build
// alone is the whole tree's command of that name, and that no other
// command of the tree answers to that name.
func TestLoneCommandsAsInTree(t *testing.T) {
	tree := NewApp(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	for name, build := range loneCommands {
		lone := build()
		var in []string
		for _, c := range tree.Commands {
			for _, n := range c.Names() {
				if n == name {
					in = append(in, c.Name)
				}
			}
		}
		if len(in) != 1 || in[0] != name {
			t.Fatalf("%s: the tree's commands answering to it are %q, want only %s", name, in, name)
		}
		c := findCommand(tree.Commands, name)
		if lone.Name != name || len(lone.Aliases) != 0 || len(lone.Subcommands) != 0 || len(c.Subcommands) != 0 {
			t.Fatalf("%s: a lone command has no alias and no subcommand", name)
		}
		if !strings.HasPrefix(c.Description, lone.Description) || len(lone.Description) == 0 {
			t.Fatalf("%s: built alone, its description is not the start of the tree's command's", name)
		}
		if lone.Usage != c.Usage || lone.ArgsUsage != c.ArgsUsage ||
			lone.SkipFlagParsing != c.SkipFlagParsing || len(lone.Flags) != len(c.Flags) || lone.Hidden != c.Hidden {
			t.Fatalf("%s: built alone, it is not the tree's command", name)
		}
	}
}

// TestLoneRunSameOutcome runs command lines of run in the whole tree and
// in run's tree alone, as Main does, and wants the same output and error.
func TestLoneRunSameOutcome(t *testing.T) {
	tests := [][]string{
		{"run"},
		{"run", "--bogus", "img"},
		{"run", "--net=none", "--hostname=a\x01b", "img"},
		{"run", "img", "---"},
		{"run", "--insecure-options=bogus", "img"},
		{"--max-image-size=lots", "run", "img"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			all := append([]string{"nscn", "--dir", dir}, args...)
			var results [2]string
			for i := range results {
				var out, errb bytes.Buffer
				a := NewApp(strings.NewReader(""), &out, &errb)
				if i == 1 {
					a = appFor(strings.NewReader(""), &out, &errb, all)
					if len(a.Commands) != 1 {
						t.Fatalf("appFor built %d commands, want run alone", len(a.Commands))
					}
				}
				err := a.RunContext(context.Background(), GlobalFlagsFirst(a, all))
				if err == nil {
					t.Fatalf("tree %d: want an error", i)
				}
				results[i] = "stdout: " + out.String() + "\nstderr: " + errb.String() + "\nerr: " + err.Error()
			}
			if results[0] != results[1] {
				t.Fatalf("the whole tree:\n%s\nrun alone:\n%s", results[0], results[1])
			}
		})
	}
}

// TestLoneRunCannotShowHelp checks that every argument that makes run show
// its help (and its description's flag table, which run alone lacks)
// makes appFor build the whole tree.
func TestLoneRunCannotShowHelp(t *testing.T) {
	for _, a := range []string{"-h", "--help", "-help", "--h", "-help=1", "help", "h"} {
		ra, err := parseRunArgs(strings.Fields("img --exec=/bin/true "+a), "run")
		if err == nil && ra.wantHelp && !mayNeedTree(a) {
			t.Fatalf("%q asks run for help, but appFor would build run alone", a)
		}
		if !mayNeedTree(a) && (a == "-h" || a == "--help" || a == "-help") {
			t.Fatalf("%q: appFor would build run alone", a)
		}
	}
	// And the other way round: the spellings run takes as help.
	for _, a := range []string{"-h", "--help", "-help"} {
		ra, err := parseRunArgs(strings.Fields(a), "run")
		if err != nil || !ra.wantHelp {
			t.Fatalf("run no longer takes %q as help (err %v): update mayNeedTree's test", a, err)
		}
	}
}
