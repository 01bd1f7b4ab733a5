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
	for _, c := range cli.NewApp(nil, io.Discard, io.Discard).Commands {
		if !c.Hidden && !strings.Contains(page, c.Name) {
			t.Errorf("nscn.1 lacks the command %s", c.Name)
		}
	}
}
