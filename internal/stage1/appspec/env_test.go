package appspec

import (
	"reflect"
	"testing"

	"github.com/appc/spec/schema/types"
)

func TestEnviron(t *testing.T) {
	tests := []struct {
		name string
		env  types.Environment
		opts EnvOptions
		want []string
	}{
		{
			name: "defaults only",
			want: []string{"PATH=" + DefaultPath, "AC_APP_NAME=web", "container=nscn"},
		},
		{
			name: "app variables in order",
			env:  types.Environment{{Name: "FOO", Value: "bar"}, {Name: "EMPTY", Value: ""}, {Name: "A", Value: "x=y"}},
			want: []string{"PATH=" + DefaultPath, "FOO=bar", "EMPTY=", "A=x=y", "AC_APP_NAME=web", "container=nscn"},
		},
		{
			name: "app sets PATH",
			env:  types.Environment{{Name: "PATH", Value: "/opt/bin"}},
			want: []string{"PATH=/opt/bin", "AC_APP_NAME=web", "container=nscn"},
		},
		{
			name: "executor variables win",
			env:  types.Environment{{Name: "AC_APP_NAME", Value: "spoof"}, {Name: "container", Value: "docker"}},
			want: []string{"PATH=" + DefaultPath, "AC_APP_NAME=web", "container=nscn"},
		},
		{
			name: "TERM passed when the app has none",
			opts: EnvOptions{Term: "xterm"},
			want: []string{"PATH=" + DefaultPath, "TERM=xterm", "AC_APP_NAME=web", "container=nscn"},
		},
		{
			name: "metadata URL from the executor replaces the app's",
			env:  types.Environment{{Name: "AC_METADATA_URL", Value: "http://evil"}},
			opts: EnvOptions{MetadataURL: "http://127.0.0.1:18112/tok"},
			want: []string{"PATH=" + DefaultPath, "AC_APP_NAME=web", "container=nscn", "AC_METADATA_URL=http://127.0.0.1:18112/tok"},
		},
		{
			name: "no metadata service keeps the app's value",
			env:  types.Environment{{Name: "AC_METADATA_URL", Value: "http://mine"}},
			want: []string{"PATH=" + DefaultPath, "AC_METADATA_URL=http://mine", "AC_APP_NAME=web", "container=nscn"},
		},
		{
			name: "app TERM wins",
			env:  types.Environment{{Name: "TERM", Value: "dumb"}},
			opts: EnvOptions{Term: "xterm"},
			want: []string{"PATH=" + DefaultPath, "TERM=dumb", "AC_APP_NAME=web", "container=nscn"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Environ("web", &types.App{Environment: tt.env}, tt.opts)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Environ =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestGetenv(t *testing.T) {
	env := []string{"PATH=/a", "PATHX=/b", "P=", "PATH=/c"}
	tests := []struct {
		name, key, want string
	}{
		{name: "last wins", key: "PATH", want: "/c"},
		{name: "longer name", key: "PATHX", want: "/b"},
		{name: "empty value", key: "P", want: ""},
		{name: "missing", key: "HOME", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Getenv(env, tt.key); got != tt.want {
				t.Errorf("Getenv(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}
