package abiargs

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

const testUUID = "6f1c0e8a-3b7d-4e0a-9c1e-2a5b4c3d2e1f"

func TestParseRunArgs(t *testing.T) {
	defaultDNS := DNSConf{Resolv: "default", Hosts: "default"}
	tests := []struct {
		name      string
		argv      []string
		want      RunArgs
		wantClass error
	}{
		{
			name: "minimal",
			argv: []string{"--net=default", testUUID},
			want: RunArgs{Net: "default", DNS: defaultDNS, UUID: testUUID},
		},
		{
			name: "every flag",
			argv: []string{
				"--debug", "--net=host", "--interactive", "--mds-token=tok", "--local-config=/etc/nscn",
				"--hostname=h", "--dns-conf-mode=resolv=host,hosts=stage0", "--disable-capabilities-restriction",
				"--disable-paths", "--disable-seccomp=true", "--ipc=parent", testUUID,
			},
			want: RunArgs{
				Debug: true, Net: "host", Interactive: true, MDSToken: "tok", LocalConfig: "/etc/nscn",
				Hostname: "h", DNS: DNSConf{Resolv: "host", Hosts: "stage0"}, DisableCapabilities: true,
				DisablePaths: true, DisableSeccomp: true, IPC: "parent", UUID: testUUID,
			},
		},
		{
			name: "bool flag set false",
			argv: []string{"--interactive=false", "--ipc=auto", testUUID},
			want: RunArgs{IPC: "auto", DNS: defaultDNS, UUID: testUUID},
		},
		{name: "no uuid", argv: []string{"--net=host"}, wantClass: errdefs.ErrInvalidArgument},
		{name: "two uuids", argv: []string{testUUID, testUUID}, wantClass: errdefs.ErrInvalidArgument},
		{name: "bad uuid", argv: []string{"not-a-uuid"}, wantClass: errdefs.ErrInvalidArgument},
		{name: "unknown flag", argv: []string{"--private-network", testUUID}, wantClass: errdefs.ErrInvalidArgument},
		{name: "private users", argv: []string{"--private-users=524288:65536", testUUID}, wantClass: errdefs.ErrNotImplemented},
		{name: "single dash flag is an argument", argv: []string{"-debug", testUUID}, wantClass: errdefs.ErrInvalidArgument},
		{name: "value flag without value", argv: []string{"--net", testUUID}, wantClass: errdefs.ErrInvalidArgument},
		{name: "bad bool", argv: []string{"--debug=maybe", testUUID}, wantClass: errdefs.ErrInvalidArgument},
		{name: "named network", argv: []string{"--net=mynet", testUUID}, wantClass: errdefs.ErrNotImplemented},
		{name: "no network", argv: []string{"--net=none", testUUID}, wantClass: errdefs.ErrNotImplemented},
		{name: "private ipc", argv: []string{"--ipc=private", testUUID}, wantClass: errdefs.ErrNotImplemented},
		{name: "unknown ipc", argv: []string{"--ipc=shared", testUUID}, wantClass: errdefs.ErrInvalidArgument},
		{name: "bad dns mode", argv: []string{"--dns-conf-mode=resolv=cni", testUUID}, wantClass: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRunArgs(tt.argv)
			if tt.wantClass != nil {
				if !errors.Is(err, tt.wantClass) {
					t.Fatalf("ParseRunArgs(%q) error = %v, want class %v", tt.argv, err, tt.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRunArgs(%q): %v", tt.argv, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRunArgs(%q) =\n%+v\nwant\n%+v", tt.argv, got, tt.want)
			}
		})
	}
}

func TestParseEnterArgs(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		want    EnterArgs
		wantErr bool
	}{
		{
			name: "command with flags of its own",
			argv: []string{"--pid=42", "--appname=web", "--", "/bin/sh", "-c", "--not-ours"},
			want: EnterArgs{PID: 42, AppName: "web", Cmd: []string{"/bin/sh", "-c", "--not-ours"}},
		},
		{
			name: "no separator",
			argv: []string{"--pid=7", "--appname=a", "ls", "/"},
			want: EnterArgs{PID: 7, AppName: "a", Cmd: []string{"ls", "/"}},
		},
		{name: "missing pid", argv: []string{"--appname=a", "--", "ls"}, wantErr: true},
		{name: "bad pid", argv: []string{"--pid=-1", "--appname=a", "--", "ls"}, wantErr: true},
		{name: "missing app", argv: []string{"--pid=1", "--", "ls"}, wantErr: true},
		{name: "missing command", argv: []string{"--pid=1", "--appname=a", "--"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnterArgs(tt.argv)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("ParseEnterArgs(%q) error = %v, want invalid argument", tt.argv, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseEnterArgs(%q) = %+v, %v; want %+v", tt.argv, got, err, tt.want)
			}
		})
	}
}

func TestParseGCAndStopArgs(t *testing.T) {
	tests := []struct {
		name    string
		parse   func([]string) (any, error)
		argv    []string
		want    any
		wantErr bool
	}{
		{name: "gc", parse: gcAny, argv: []string{testUUID}, want: GCArgs{UUID: testUUID}},
		{name: "gc debug local config", parse: gcAny, argv: []string{"--debug", "--local-config=/x", testUUID}, want: GCArgs{Debug: true, LocalConfig: "/x", UUID: testUUID}},
		{name: "gc no uuid", parse: gcAny, argv: nil, wantErr: true},
		{name: "stop", parse: stopAny, argv: []string{testUUID}, want: StopArgs{UUID: testUUID}},
		{name: "stop force", parse: stopAny, argv: []string{"--force", testUUID}, want: StopArgs{Force: true, UUID: testUUID}},
		{name: "stop unknown flag", parse: stopAny, argv: []string{"--debug", testUUID}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(tt.argv)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parse(%q) succeeded, want error", tt.argv)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parse(%q) = %+v, %v; want %+v", tt.argv, got, err, tt.want)
			}
		})
	}
}

func gcAny(argv []string) (any, error)   { return ParseGCArgs(argv) }
func stopAny(argv []string) (any, error) { return ParseStopArgs(argv) }

func TestParseDNSConfMode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    DNSConf
		wantErr bool
	}{
		{name: "empty", in: "", want: DNSConf{Resolv: "default", Hosts: "default"}},
		{name: "both", in: "resolv=host,hosts=stage0", want: DNSConf{Resolv: "host", Hosts: "stage0"}},
		{name: "one key", in: "resolv=none", want: DNSConf{Resolv: "none", Hosts: "default"}},
		{name: "unknown key", in: "search=host", wantErr: true},
		{name: "unknown mode", in: "hosts=cni", wantErr: true},
		{name: "no equals", in: "resolv", wantErr: true},
		{name: "repeated key", in: "resolv=host,resolv=none", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDNSConfMode(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDNSConfMode(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("ParseDNSConfMode(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseDNSConfMode checks that the parser never panics and only ever
// yields known modes.
func FuzzParseDNSConfMode(f *testing.F) {
	f.Add("resolv=host,hosts=default")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseDNSConfMode(s)
		if err != nil {
			return
		}
		for _, m := range []string{c.Resolv, c.Hosts} {
			switch m {
			case "default", "host", "stage0", "none":
			default:
				t.Fatalf("ParseDNSConfMode(%q) yielded mode %q", s, m)
			}
		}
	})
}

// FuzzParseRunArgs checks that any single argument list parses without
// panicking (the argv comes from stage0, but a parser is a parser).
func FuzzParseRunArgs(f *testing.F) {
	f.Add("--net=host", "--dns-conf-mode=resolv=host", testUUID)
	f.Fuzz(func(_ *testing.T, a, b, c string) {
		_, _ = ParseRunArgs([]string{a, b, c})
		_, _ = ParseEnterArgs([]string{a, b, c})
	})
}

func TestParseAppArgs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		argv    []string
		want    AppArgs
		wantErr bool
	}{
		{name: "minimal", argv: []string{"--uuid=" + testUUID, "--app=web"}, want: AppArgs{UUID: testUUID, App: "web"}},
		{
			name: "every flag", argv: []string{"--debug", "--disable-capabilities-restriction", "--disable-paths", "--disable-seccomp", "--uuid=" + testUUID, "--app=a-1"},
			want: AppArgs{Debug: true, DisableCapabilities: true, DisablePaths: true, DisableSeccomp: true, UUID: testUUID, App: "a-1"},
		},
		{name: "flags in any order", argv: []string{"--app=web", "--uuid=" + testUUID, "--debug"}, want: AppArgs{Debug: true, UUID: testUUID, App: "web"}},
		{name: "no uuid", argv: []string{"--app=web"}, wantErr: true},
		{name: "no app", argv: []string{"--uuid=" + testUUID}, wantErr: true},
		{name: "app not an AC name", argv: []string{"--uuid=" + testUUID, "--app=../x"}, wantErr: true},
		{name: "app with a double dash", argv: []string{"--uuid=" + testUUID, "--app=a--b"}, wantErr: true},
		{name: "app upper case", argv: []string{"--uuid=" + testUUID, "--app=Web"}, wantErr: true},
		{name: "bad uuid", argv: []string{"--uuid=nope", "--app=web"}, wantErr: true},
		{name: "positional argument", argv: []string{"--uuid=" + testUUID, "--app=web", testUUID}, wantErr: true},
		{name: "unknown flag", argv: []string{"--uuid=" + testUUID, "--app=web", "--force"}, wantErr: true},
		{name: "uuid without value", argv: []string{"--uuid", "--app=web"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAppArgs(tc.argv)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("ParseAppArgs(%q) = %+v, %v; want an invalid argument", tc.argv, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseAppArgs(%q) = %+v, %v; want %+v", tc.argv, got, err, tc.want)
			}
		})
	}
}

// FuzzParseAppArgs checks that no argument list panics the parser and
// that what it accepts is safe to use as a unit and path name.
func FuzzParseAppArgs(f *testing.F) {
	f.Add("--uuid="+testUUID, "--app=web", "--debug")
	f.Add("--app=a-b", "--uuid="+testUUID, "--disable-seccomp")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		got, err := ParseAppArgs([]string{a, b, c})
		if err != nil {
			return
		}
		if strings.ContainsAny(got.App, "/.% \\") || got.App == "" {
			t.Fatalf("ParseAppArgs accepted app name %q", got.App)
		}
	})
}
