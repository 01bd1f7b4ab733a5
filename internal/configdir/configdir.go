// Package configdir reads the JSON files of one kind of setting in nscn's
// configuration directories (<cfg>/auth.d, registries.d, paths.d,
// stage1.d): every *.json file, in name order, each whole. What the files
// mean and how directories combine is the caller's; this package only
// makes every kind skip, bound and report files the same way. It imports
// the standard library and errdefs only. Decode is the files' strict JSON
// reading.
package configdir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/nosecone/nscn/internal/errdefs"
)

// MaxFileSize bounds a configuration file: a few settings, never a reason
// to read megabytes.
const MaxFileSize = 64 << 10

// File is one configuration file, read.
type File struct {
	Path string
	Data []byte
}

// Read returns the *.json files of dir in name order. A missing dir has
// none; what is not a regular file (a directory, a dangling link, a file
// removed meanwhile) is skipped. A file larger than MaxFileSize is an
// InvalidArgument error naming it; what is names the setting in errors
// ("auth configuration").
func Read(dir, what string) ([]File, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	sort.Strings(names)
	var out []File
	for _, name := range names {
		st, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		if !st.Mode().IsRegular() {
			continue
		}
		if st.Size() > MaxFileSize {
			return nil, errdefs.InvalidArgument("%s file %s: larger than %d bytes", what, name, MaxFileSize)
		}
		data, err := os.ReadFile(name) //nolint:gosec // G304: a file of the configuration directories
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		out = append(out, File{Path: name, Data: data})
	}
	return out, nil
}

// Decode reads data, a file's content, into v: one JSON value, with no
// field v lacks (a misspelt setting is an error, not silently ignored) and
// nothing after it. Errors are InvalidArgument, prefixed with what.
func Decode(data []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errdefs.InvalidArgument("parse %s: %v", what, err)
	}
	if dec.More() {
		return errdefs.InvalidArgument("parse %s: more than one JSON value", what)
	}
	return nil
}
