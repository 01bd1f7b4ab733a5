//go:build !urfave_cli_no_docs

package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/stage0/cli"
)

func TestManPage(t *testing.T) {
	dir := t.TempDir()
	generate(t, "-man", dir)
	b, err := os.ReadFile(filepath.Join(dir, "nscn.1"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{".TH nscn 1", ".SH NAME", ".SH COMMANDS", "--dir"} {
		if !strings.Contains(page, want) {
			t.Errorf("nscn.1 lacks %q", want)
		}
	}
	// A page per command, with its own flags.
	for _, c := range cli.NewApp(nil, io.Discard, io.Discard).Commands {
		if c.Hidden {
			continue
		}
		if !strings.Contains(page, c.Name) {
			t.Errorf("nscn.1 lacks the command %s", c.Name)
		}
		b, err := os.ReadFile(filepath.Join(dir, "nscn-"+c.Name+".1")) //nolint:gosec // G304: a file the test made
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(b), ".TH nscn-"+c.Name+" 1") {
			t.Errorf("nscn-%s.1 has no title line", c.Name)
		}
		for _, f := range c.VisibleFlags() {
			if !strings.Contains(string(b), f.Names()[0]) {
				t.Errorf("nscn-%s.1 lacks the flag --%s", c.Name, f.Names()[0])
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nscn-help.1")); err == nil {
		t.Error("nscn-help.1 written: help has no page of its own")
	}
}
