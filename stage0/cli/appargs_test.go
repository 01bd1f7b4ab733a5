package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParseAppCmdArgs(t *testing.T) {
	known := []string{"app", "format"}
	for _, tc := range []struct {
		name    string
		args    []string
		want    appCmdArgs
		wantErr bool
	}{
		{name: "flag after the uuid", args: []string{"u1", "--app=web"}, want: appCmdArgs{pos: []string{"u1"}, flags: map[string]string{"app": "web"}}},
		{name: "flag before the uuid", args: []string{"--app=web", "u1"}, want: appCmdArgs{pos: []string{"u1"}, flags: map[string]string{"app": "web"}}},
		{name: "separate value", args: []string{"u1", "--app", "web", "--format", "json"}, want: appCmdArgs{pos: []string{"u1"}, flags: map[string]string{"app": "web", "format": "json"}}},
		{name: "single dash", args: []string{"u1", "-app=web"}, want: appCmdArgs{pos: []string{"u1"}, flags: map[string]string{"app": "web"}}},
		{name: "last value wins", args: []string{"u1", "--app=a", "--app=b"}, want: appCmdArgs{pos: []string{"u1"}, flags: map[string]string{"app": "b"}}},
		{name: "command after --", args: []string{"u1", "--app=web", "--", "ls", "--app=x", "-l"}, want: appCmdArgs{pos: []string{"u1"}, flags: map[string]string{"app": "web"}, cmd: []string{"ls", "--app=x", "-l"}}},
		{name: "empty value", args: []string{"u1", "--app="}, want: appCmdArgs{pos: []string{"u1"}, flags: map[string]string{"app": ""}}},
		{name: "unknown flag", args: []string{"u1", "--force"}, wantErr: true},
		{name: "value missing", args: []string{"u1", "--app"}, wantErr: true},
		{name: "value missing before --", args: []string{"u1", "--app", "--", "ls"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAppCmdArgs(tc.args, known)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("parseAppCmdArgs(%q) = %+v, %v; want a usage error", tc.args, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseAppCmdArgs(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
			}
		})
	}
}

func FuzzParseAppCmdArgs(f *testing.F) {
	f.Add("u1", "--app=web", "--")
	f.Add("--app", "web", "u1")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		got, err := parseAppCmdArgs([]string{a, b, c}, []string{"app", "format"})
		if err != nil {
			return
		}
		for k := range got.flags {
			if k != "app" && k != "format" {
				t.Fatalf("unknown flag %q accepted", k)
			}
		}
		for _, p := range got.pos {
			if strings.HasPrefix(p, "-") && p != "-" {
				t.Fatalf("flag %q taken for a positional argument", p)
			}
		}
	})
}
