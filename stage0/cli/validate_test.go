package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

// TestBadValuesRefusedBeforeAnyChange runs nscn with one bad value each
// and checks that it is a one-line usage error (exit 2) that names the
// flag, and that the data directory was not even created.
func TestBadValuesRefusedBeforeAnyChange(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "hostname with a newline", args: []string{"run", "--hostname=a\nb", "img"}, want: "--hostname"},
		{name: "hostname with a leading dash", args: []string{"run", "--hostname=-web", "img"}, want: "not a host name"},
		{name: "hostname with an underscore", args: []string{"run", "--hostname=my_host", "img"}, want: "not a host name"},
		{name: "hostname too long", args: []string{"run", "--hostname=" + strings.Repeat("a", 65), "img"}, want: "over the limit of 64"},
		{name: "hostname empty label", args: []string{"run", "--hostname=a..b", "img"}, want: "not a host name"},
		{name: "name too long", args: []string{"run", "img", "--name=" + long}, want: "--name: app name"},
		{name: "name upper case", args: []string{"run", "img", "--name=Web"}, want: "not a valid appc name"},
		{name: "name with an escape", args: []string{"prepare", "img", "--name=w\x1b[2J"}, want: "--name"},
		{name: "negative memory", args: []string{"run", "img", "--memory=-1"}, want: "--memory"},
		{name: "zero memory", args: []string{"run", "img", "--memory=0"}, want: "must be positive"},
		{name: "memory not a quantity", args: []string{"run", "img", "--memory=lots"}, want: "--memory"},
		{name: "zero cpu", args: []string{"run", "img", "--cpu=0"}, want: "--cpu"},
		{name: "negative cpu", args: []string{"run", "img", "--cpu=-500m"}, want: "--cpu"},
		{name: "empty volume mode too large", args: []string{"run", "--volume=tmp,kind=empty,mode=99999", "img"}, want: "not an octal permission"},
		{name: "empty volume mode not octal", args: []string{"run", "--volume=tmp,kind=empty,mode=0999", "img"}, want: "not an octal permission"},
		{name: "empty volume negative uid", args: []string{"run", "--volume=tmp,kind=empty,uid=-1", "img"}, want: "uid -1"},
		{name: "volume of an unknown kind", args: []string{"run", "--volume=tmp,kind=tmpfs", "img"}, want: "--volume"},
		{name: "volume without a kind", args: []string{"run", "--volume=tmp", "img"}, want: "--volume"},
		{name: "host volume relative source", args: []string{"run", "--volume=d,kind=host,source=srv", "img"}, want: "--volume"},
		{name: "mount target relative", args: []string{"run", "img", "--mount=volume=d,target=data"}, want: "absolute"},
		{name: "port out of range", args: []string{"run", "--port=web:99999", "img"}, want: "--port"},
		{name: "port without a name", args: []string{"run", "--port=8080", "img"}, want: "--port"},
		{name: "set-env name with a digit first", args: []string{"run", "img", "--set-env=1X=y"}, want: "--set-env"},
		{name: "set-env name with a space", args: []string{"run", "img", "--set-env=A B=c"}, want: "--set-env"},
		{name: "set-env without a value", args: []string{"run", "img", "--set-env=A"}, want: "NAME=VALUE"},
		{name: "net name with a space", args: []string{"run", "--net=my net", "img"}, want: "--net"},
		{name: "net host with others", args: []string{"run", "--net=host,default", "img"}, want: "--net"},
		{name: "net argument with a newline", args: []string{"run", "--net=default:IP=1\n2", "img"}, want: "--net"},
		{name: "working dir relative", args: []string{"run", "img", "--working-dir=srv"}, want: "--working-dir"},
		{name: "user with a newline", args: []string{"run", "img", "--user=a\nb"}, want: "--user"},
		{name: "exec with an escape", args: []string{"run", "img", "--exec=/bin/sh\x1b"}, want: "--exec"},
		{name: "stage1 path with a newline", args: []string{"run", "--stage1-path=/a\nb", "img"}, want: "--stage1-path"},
		{name: "run-prepared hostname with a newline", args: []string{"run-prepared", "--hostname=a\nb", "0123"}, want: "--hostname"},
		{name: "run-prepared bad hostname", args: []string{"run-prepared", "--hostname=a_b", "0123"}, want: "not a host name"},
		{name: "run-prepared bad net", args: []string{"run-prepared", "--net=a b", "0123"}, want: "--net"},
		{name: "fetch signature with a newline", args: []string{"fetch", "--signature=a\nb", "img"}, want: "--signature"},
		{name: "global flag with an escape", args: []string{"--local-config=/etc/\x1b", "list"}, want: "--local-config"},
		{name: "insecure option unknown", args: []string{"--insecure-options=everything", "list"}, want: "unknown insecure option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			stdout, _, err := runAppIn(t, dir, tt.args...)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tt.want)
			}
			if stdout != "" {
				t.Fatalf("stdout = %q, want nothing", stdout)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the data directory was touched: %v", err)
			}
		})
	}
}

func TestCheckHostname(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{name: "empty: the stage1's default", in: "", ok: true},
		{name: "one label", in: "web", ok: true},
		{name: "fqdn", in: "web-1.example.com", ok: true},
		{name: "upper case", in: "Web", ok: true},
		{name: "digits first", in: "1web", ok: true},
		{name: "64 characters", in: strings.Repeat("a.", 32)[:63] + "b", ok: true},
		{name: "65 characters", in: strings.Repeat("a", 65)},
		{name: "trailing dot", in: "web."},
		{name: "leading dash", in: "-web"},
		{name: "trailing dash in a label", in: "web-.example"},
		{name: "underscore", in: "a_b"},
		{name: "space", in: "a b"},
		{name: "newline", in: "a\nb"},
		{name: "unicode", in: "wéb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkHostname(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("checkHostname(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("checkHostname(%q) = %v, not a usage error", tt.in, err)
			}
		})
	}
}

func FuzzCheckHostname(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		err := checkHostname(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("checkHostname(%q): %v is not a one-line usage error", s, err)
			}
			return
		}
		if len(s) > maxHostname {
			t.Fatalf("checkHostname accepted %d characters", len(s))
		}
		for _, r := range s {
			if !isHostnameChar(r) && r != '.' {
				t.Fatalf("checkHostname accepted %q", s)
			}
		}
	})
}
