package isolate

import (
	"errors"
	"slices"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestParseAppPaths(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		masked   []string
		readOnly []string
		bad      bool
	}{
		{name: "both", in: `{"masked":["/bin/ls"],"readOnly":["/tmp"]}`, masked: []string{"/bin/ls"}, readOnly: []string{"/tmp"}},
		{name: "empty", in: `{}`},
		{name: "relative", in: `{"masked":["bin/ls"]}`, bad: true},
		{name: "root", in: `{"readOnly":["/"]}`, bad: true},
		{name: "dot-dot", in: `{"masked":["/proc/../etc"]}`, bad: true},
		{name: "trailing slash", in: `{"masked":["/proc/"]}`, bad: true},
		{name: "unknown field", in: `{"hidden":["/x"]}`, bad: true},
		{name: "not an object", in: `[]`, bad: true},
		{name: "trailing data", in: `{} {}`, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseAppPaths(tt.in)
			if tt.bad {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("ParseAppPaths(%q) = %+v, %v; want an invalid-argument error", tt.in, p, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Masked, tt.masked) || !slices.Equal(p.ReadOnly, tt.readOnly) {
				t.Errorf("paths %+v, want masked %v read-only %v", p, tt.masked, tt.readOnly)
			}
		})
	}
}

func TestPolicyForRuntimeApp(t *testing.T) {
	app := &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0"}
	ann := types.Annotations{{Name: stage1abi.AnnotationAppPaths, Value: `{"masked":["/bin/ls","/proc/kcore"],"readOnly":["/tmp"]}`}}
	tests := []struct {
		name     string
		opts     Options
		masked   []string
		readOnly []string
	}{
		{name: "added to the defaults", masked: append(DefaultPaths().Masked, "/bin/ls"), readOnly: append(DefaultPaths().ReadOnly, "/tmp")},
		{name: "kept with --disable-paths", opts: Options{DisablePaths: true}, masked: []string{"/bin/ls", "/proc/kcore"}, readOnly: []string{"/tmp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, err := PolicyForRuntimeApp(&schema.RuntimeApp{App: app, Annotations: ann}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Paths.Masked, tt.masked) || !slices.Equal(p.Paths.ReadOnly, tt.readOnly) {
				t.Errorf("paths %+v, want masked %v read-only %v", p.Paths, tt.masked, tt.readOnly)
			}
		})
	}
	bad := types.Annotations{{Name: stage1abi.AnnotationAppPaths, Value: `{"masked":["x"]}`}}
	if _, _, err := PolicyForRuntimeApp(&schema.RuntimeApp{App: app, Annotations: bad}, Options{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad annotation: err %v, want an invalid-argument error", err)
	}
}

// FuzzParseAppPaths: never a panic; what it accepts is absolute and clean.
func FuzzParseAppPaths(f *testing.F) {
	f.Add(`{"masked":["/bin/ls"],"readOnly":["/tmp"]}`)
	f.Add(`{"masked":["/proc/../x"]}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, v string) {
		p, err := ParseAppPaths(v)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not an invalid-argument error", err)
			}
			return
		}
		for _, s := range append(p.Masked, p.ReadOnly...) {
			if checkAppPath(s) != nil {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}
