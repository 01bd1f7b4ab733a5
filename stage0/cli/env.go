package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/nosecone/nscn/internal/datadir"
	"github.com/nosecone/nscn/internal/safetext"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/tree"
)

// openStore opens the image store of the data directory for a command
// that writes to it. The data directory gets the owner, group and mode of
// the host's model first (datadir.Ensure): created so, or tightened if
// an older nscn left it readable by every user.
func openStore(ctx context.Context, g *Globals) (*store.Store, error) {
	if err := ensureDataDir(g); err != nil {
		return nil, err
	}
	return openStoreIn(ctx, g)
}

// openStoreIn opens the store with the limits of the global flags: an OCI
// image's layers are decompressed only when they are rendered or
// extracted, where --max-image-size bounds them.
func openStoreIn(ctx context.Context, g *Globals) (*store.Store, error) {
	s, err := store.Open(ctx, g.Dir, tree.WithMaxOCISize(g.MaxImageSize), tree.WithDecoders(storeDecoders))
	if err != nil {
		return nil, err
	}
	s.MaxOCISize, s.Decoders = g.MaxImageSize, storeDecoders
	return s, nil
}

// openStoreReadOnly opens the image store for a command that only reads
// it (image list, image cat-manifest, api-service): it changes nothing of
// the data directory, so that a member of the nscn group may run it.
func openStoreReadOnly(ctx context.Context, g *Globals) *store.Store {
	s := store.OpenReadOnly(ctx, g.Dir, tree.WithMaxOCISize(g.MaxImageSize), tree.WithDecoders(storeDecoders))
	s.MaxOCISize, s.Decoders = g.MaxImageSize, storeDecoders
	return s
}

// ensureDataDir prepares the data directory before a command writes to it
// (Documentation/security.md, "Least privilege on disk").
func ensureDataDir(g *Globals) error {
	p, err := datadir.Lookup()
	if err != nil {
		return err
	}
	return datadir.Ensure(g.Dir, p)
}

// authDirs are the directories whose auth.d nscn reads, the most
// important first: the user's (--user-config, rkt's flag), the local and
// the system one.
func authDirs(g *Globals) []string {
	return []string{g.UserConfig, g.LocalConfig, g.SystemConfig}
}

// progressWriter returns w when it is a terminal: progress bars are for
// people, and a script's captured stderr should hold only messages.
func progressWriter(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return w
	}
	return nil
}

// writeJSON prints v as indented JSON on w, with the control characters
// encoding/json leaves raw escaped (safetext.JSON).
func writeJSON(w io.Writer, v any) error { return writeJSONAs(w, v, "json-pretty") }

// writeJSONAs writes v as --format asks: "json" on one line, as rkt did,
// "json-pretty" indented.
func writeJSONAs(w io.Writer, v any, format string) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	if format != "json" {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	if _, err := w.Write(safetext.JSON(b.Bytes())); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// formatFlag is the --format flag of list-like commands.
var formatFlag = &cli.StringFlag{Name: "format", Value: "table", Usage: "output format: table, json (one line) or json-pretty"}

// checkFormat reads --format: table, or rkt's json and json-pretty.
func checkFormat(c *cli.Context) (string, error) {
	f := c.String("format")
	if f != "table" && !isJSONFormat(f) {
		return "", usageErrorf("unknown --format %q (want table, json or json-pretty)", f)
	}
	return f, nil
}

func isJSONFormat(f string) bool { return f == "json" || f == "json-pretty" }
