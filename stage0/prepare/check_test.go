package prepare

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

// wantUsage fails unless err is a one-line errdefs.ErrInvalidArgument
// mentioning want.
func wantUsage(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want a one-line invalid argument mentioning %q", err, want)
	}
}

func TestCheckAppName(t *testing.T) {
	tests := []struct {
		name, in, err string
	}{
		{name: "plain", in: "web"},
		{name: "dashes", in: "my-web-1"},
		{name: "at the limit", in: strings.Repeat("a", MaxAppName)},
		{name: "too long", in: strings.Repeat("a", 300), err: "300 characters long"},
		{name: "upper case", in: "Web", err: "not a valid appc name"},
		{name: "newline", in: "web\nx", err: "not a valid appc name"},
		{name: "escape", in: "web\x1b[2J", err: "not a valid appc name"},
		{name: "empty", in: "", err: "not a valid appc name"},
		{name: "leading dash", in: "-web", err: "not a valid appc name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckAppName(tt.in)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantUsage(t, err, tt.err)
		})
	}
}

func TestCheckVolume(t *testing.T) {
	tests := []struct {
		name, flag, err string
	}{
		{name: "host", flag: "data,kind=host,source=/srv"},
		{name: "host read-only", flag: "data,kind=host,source=/srv,readOnly=true"},
		{name: "empty default mode", flag: "tmp,kind=empty"},
		{name: "empty sticky mode", flag: "tmp,kind=empty,mode=1777,uid=1000,gid=1000"},
		{name: "mode too large", flag: "tmp,kind=empty,mode=99999", err: "not an octal permission"},
		{name: "mode with an 8", flag: "tmp,kind=empty,mode=0787", err: "not an octal permission"},
		{name: "mode not a number", flag: "tmp,kind=empty,mode=rwx", err: "not an octal permission"},
		{name: "mode with a sign", flag: "tmp,kind=empty,mode=+755", err: "not an octal permission"},
		{name: "mode empty", flag: "tmp,kind=empty,mode=", err: "not an octal permission"},
		{name: "negative uid", flag: "tmp,kind=empty,uid=-1", err: "uid -1"},
		{name: "gid too large", flag: "tmp,kind=empty,gid=4294967295", err: "gid 4294967295"},
		{name: "control character in the source", flag: "data,kind=host,source=/srv/a\nb", err: "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := types.VolumeFromString(tt.flag)
			if err != nil {
				t.Fatalf("VolumeFromString: %v", err)
			}
			err = CheckVolume(*v)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantUsage(t, err, tt.err)
		})
	}
	t.Run("unknown kind", func(t *testing.T) {
		wantUsage(t, CheckVolume(types.Volume{Name: "x", Kind: "tmpfs"}), "neither host nor empty")
	})
	t.Run("relative source", func(t *testing.T) {
		wantUsage(t, CheckVolume(types.Volume{Name: "x", Kind: "host", Source: "srv"}), "not an absolute path")
	})
}

func FuzzParseMode(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseMode(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParseMode(%q): error %v is not an invalid argument", s, err)
			}
			return
		}
		if n > 0o7777 {
			t.Fatalf("ParseMode(%q) = %o, over 07777", s, n)
		}
	})
}

func manifestWith(t *testing.T, isolators string) *schema.ImageManifest {
	t.Helper()
	var app types.App
	if err := json.Unmarshal([]byte(`{"exec":["/bin/true"],"user":"0","group":"0","isolators":`+isolators+`}`), &app); err != nil {
		t.Fatalf("parse app: %v", err)
	}
	return &schema.ImageManifest{Name: "example.com/caps", App: &app}
}

func TestCapabilityConsent(t *testing.T) {
	const (
		sysAdmin = `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_NET_BIND_SERVICE","CAP_SYS_ADMIN"]}}]`
		within   = `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_NET_BIND_SERVICE"]}}]`
		remove   = `[{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_SYS_ADMIN","CAP_MKNOD"]}}]`
	)
	tests := []struct {
		name      string
		isolators string
		consented bool
		err       string
	}{
		{name: "no isolators", isolators: `[]`},
		{name: "retain within the default set", isolators: within},
		{name: "remove-set", isolators: remove},
		{name: "beyond the default without consent", isolators: sysAdmin, err: "asks for CAP_SYS_ADMIN beyond appc's default capabilities; to grant them, give --caps-retain=CAP_NET_BIND_SERVICE,CAP_SYS_ADMIN"},
		{name: "beyond the default with consent", isolators: sysAdmin, consented: true},
		{name: "retain and remove", isolators: `[` + within[1:len(within)-1] + `,` + remove[1:], err: "cannot be used together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := capabilityConsent("caps", manifestWith(t, tt.isolators), tt.consented, grantWithFlag)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantUsage(t, err, tt.err)
		})
	}
	t.Run("no app", func(t *testing.T) {
		if err := capabilityConsent("x", &schema.ImageManifest{Name: "example.com/x"}, false, grantWithFlag); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHasCapabilityIsolator(t *testing.T) {
	tests := []struct {
		name, isolators string
		want            bool
	}{
		{name: "none", isolators: `[]`},
		{name: "memory", isolators: `[{"name":"resource/memory","value":{"limit":"1G"}}]`},
		{name: "retain", isolators: `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_KILL"]}}]`, want: true},
		{name: "remove", isolators: `[{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_KILL"]}}]`, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasCapabilityIsolator(manifestWith(t, tt.isolators).App.Isolators); got != tt.want {
				t.Fatalf("hasCapabilityIsolator = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEnvNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{name: "PATH", ok: true},
		{name: "_x.y-z9", ok: true},
		{name: ""},
		{name: "9LIVES"},
		{name: "A B"},
		{name: "A\nB"},
		{name: "BASH_FUNC_f%%"},
		{name: "-x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckEnvName(tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckEnvName(%q) = %v, want ok %v", tt.name, err, tt.ok)
			}
		})
	}
}

func TestCheckOSArch(t *testing.T) {
	tests := []struct {
		name   string
		labels types.Labels
		goarch string
		want   string // "" for no error, else a part of the message
	}{
		{name: "host", labels: types.Labels{{Name: "os", Value: "linux"}, {Name: "arch", Value: "amd64"}}, goarch: "amd64"},
		{name: "arm64 host", labels: types.Labels{{Name: "os", Value: "linux"}, {Name: "arch", Value: "aarch64"}}, goarch: "arm64"},
		{name: "no labels", goarch: "amd64", want: "missing os label in the image manifest"},
		{name: "no arch", labels: types.Labels{{Name: "os", Value: "linux"}}, goarch: "amd64", want: "missing arch label in the image manifest"},
		{name: "freebsd", labels: types.Labels{{Name: "os", Value: "freebsd"}, {Name: "arch", Value: "amd64"}}, goarch: "amd64", want: `bad os "freebsd"`},
		{name: "foreign arch", labels: types.Labels{{Name: "os", Value: "linux"}, {Name: "arch", Value: "aarch64"}}, goarch: "amd64", want: `bad arch "aarch64"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := schema.BlankImageManifest()
			m.Name = "example.com/app"
			m.Labels = tt.labels
			err := CheckOSArch(m, "linux", tt.goarch)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckOSArch: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckOSArch = %v, want an invalid-argument error with %q", err, tt.want)
			}
		})
	}
}
