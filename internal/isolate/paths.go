package isolate

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// maxAppPaths bounds the paths one annotation may name: each is a mount
// in the app's namespace.
const maxAppPaths = 256

// ParseAppPaths parses the value of the runtime app annotation
// stage1abi.AnnotationAppPaths: a JSON object with "masked" and
// "readOnly" lists of absolute, clean paths without NUL. Anything else
// is an errdefs.ErrInvalidArgument error.
func ParseAppPaths(v string) (Paths, error) {
	var p Paths
	d := json.NewDecoder(strings.NewReader(v))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return Paths{}, errdefs.InvalidArgument("annotation %s: %v", stage1abi.AnnotationAppPaths, err)
	}
	if d.More() {
		return Paths{}, errdefs.InvalidArgument("annotation %s: data after the JSON object", stage1abi.AnnotationAppPaths)
	}
	if n := len(p.Masked) + len(p.ReadOnly); n > maxAppPaths {
		return Paths{}, errdefs.InvalidArgument("annotation %s: %d paths, at most %d", stage1abi.AnnotationAppPaths, n, maxAppPaths)
	}
	for _, l := range [][]string{p.Masked, p.ReadOnly} {
		for _, s := range l {
			if err := checkAppPath(s); err != nil {
				return Paths{}, errdefs.InvalidArgument("annotation %s: %w", stage1abi.AnnotationAppPaths, err)
			}
		}
	}
	return p, nil
}

func checkAppPath(s string) error {
	switch {
	case !strings.HasPrefix(s, "/"):
		return fmt.Errorf("path %q is not absolute", s)
	case s == "/":
		return fmt.Errorf("path %q is the app's root", s)
	case path.Clean(s) != s:
		return fmt.Errorf("path %q is not clean (want %q)", s, path.Clean(s))
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("path %q holds a NUL", s)
	case len(s) > 4096:
		return fmt.Errorf("path of %d bytes is too long", len(s))
	}
	return nil
}

// PolicyForRuntimeApp is PolicyFor for an app of a pod manifest: the
// image's and the runtime app's isolators, plus the paths its
// stage1abi.AnnotationAppPaths annotation asks to restrict (added to the
// defaults, and applied even when opts.DisablePaths turns the defaults
// off: they were asked for by name).
func PolicyForRuntimeApp(ra *schema.RuntimeApp, opts Options) (*Policy, Report, error) {
	if ra == nil {
		return nil, nil, errdefs.InvalidArgument("no app to compute a policy for")
	}
	p, r, err := PolicyFor(ra.App, opts)
	if err != nil {
		return nil, nil, err
	}
	v, ok := ra.Annotations.Get(stage1abi.AnnotationAppPaths)
	if !ok {
		return p, r, nil
	}
	extra, err := ParseAppPaths(v)
	if err != nil {
		return nil, nil, err
	}
	p.Paths.Masked = appendNew(p.Paths.Masked, extra.Masked)
	p.Paths.ReadOnly = appendNew(p.Paths.ReadOnly, extra.ReadOnly)
	r = append(r, Entry{
		Name: stage1abi.AnnotationAppPaths, Status: Enforced,
		Detail: fmt.Sprintf("read-only %s; masked %s", strings.Join(extra.ReadOnly, ","), strings.Join(extra.Masked, ",")),
	})
	return p, r, nil
}

func appendNew(have, add []string) []string {
	for _, s := range add {
		if !slices.Contains(have, s) {
			have = append(have, s)
		}
	}
	return have
}
