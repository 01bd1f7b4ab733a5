// Command nscn-gendoc writes nscn's manual pages and its bash and zsh
// completion scripts from the command tree of stage0/cli, so that both
// follow the commands and flags of the binary they ship with. `make man`
// and `make install` run it at build time; it is not installed.
//
// It is built without the urfave_cli_no_docs tag that the nscn binary is
// built with: the man page comes from urfave/cli's ToMan, which that tag
// leaves out (see man_docs.go). It needs no root and writes only the files
// named by its flags.
//
// Usage:
//
//	nscn-gendoc [-man DIR] [-bash FILE] [-zsh FILE]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nosecone/nscn/stage0/cli"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "nscn-gendoc:", err)
		os.Exit(1) //nolint:forbidigo // main: only main exits
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("nscn-gendoc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	manDir := fs.String("man", "", "write the manual pages nscn.1 and nscn-COMMAND.1 into `DIR`")
	bashFile := fs.String("bash", "", "write the bash completion script to `FILE`")
	zshFile := fs.String("zsh", "", "write the zsh completion script to `FILE`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || (*manDir == "" && *bashFile == "" && *zshFile == "") {
		fs.Usage()
		return errors.New("give at least one of -man, -bash, -zsh and no arguments")
	}
	app := cli.NewApp(nil, io.Discard, io.Discard)
	// Setup adds what Run would: the help command and flags, which the
	// completion offers too.
	app.Setup()
	tree := walk(app)
	if *manDir != "" {
		pages, err := manPages(app)
		if err != nil {
			return err
		}
		for name, page := range pages {
			if err := writeFile(filepath.Join(*manDir, name), page); err != nil {
				return err
			}
		}
	}
	if *bashFile != "" {
		if err := writeFile(*bashFile, bashCompletion(tree)); err != nil {
			return err
		}
	}
	if *zshFile != "" {
		if err := writeFile(*zshFile, zshCompletion(tree)); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
