package stage1

import (
	"errors"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestRunArgs(t *testing.T) {
	tests := []struct {
		name  string
		flags RunFlags
		want  string
		class error
	}{
		{name: "minimal", flags: RunFlags{UUID: "u", InterfaceVersion: 1}, want: "--net=default u"},
		{name: "everything at version 6", flags: RunFlags{
			Debug: true, Net: "host", Interactive: true, MDSToken: "t", LocalConfig: "/etc/nscn", Hostname: "h",
			DNSConfMode: "resolv=host", DisableCapabilities: true, DisablePaths: true, DisableSeccomp: true, IPC: "private",
			UUID: "u", InterfaceVersion: 6,
		}, want: "--debug --net=host --interactive --mds-token=t --local-config=/etc/nscn --hostname=h --dns-conf-mode=resolv=host --disable-capabilities-restriction --disable-paths --disable-seccomp --ipc=private u"},
		{
			name: "mds port at version 7", flags: RunFlags{MDSToken: "t", MDSPort: 4000, UUID: "u", InterfaceVersion: 7},
			want: "--net=default --mds-token=t --mds-port=4000 u",
		},
		{
			name: "mds port left out below 7", flags: RunFlags{MDSToken: "t", MDSPort: 4000, UUID: "u", InterfaceVersion: 6},
			want: "--net=default --mds-token=t u",
		},
		{
			name: "token in the pod directory from 9", flags: RunFlags{MDSToken: "t", MDSPort: 4000, UUID: "u", InterfaceVersion: 9},
			want: "--net=default --mds-port=4000 u",
		},
		{name: "no mds port without a token", flags: RunFlags{MDSPort: 4000, UUID: "u", InterfaceVersion: 7}, want: "--net=default u"},
		{name: "hostname needs 2", flags: RunFlags{Hostname: "h", UUID: "u", InterfaceVersion: 1}, class: errdefs.ErrFailedPrecondition},
		{name: "disable needs 3", flags: RunFlags{DisableSeccomp: true, UUID: "u", InterfaceVersion: 2}, class: errdefs.ErrFailedPrecondition},
		{name: "dns conf needs 4", flags: RunFlags{DNSConfMode: "resolv=host", UUID: "u", InterfaceVersion: 3}, class: errdefs.ErrFailedPrecondition},
		{name: "ipc needs 6", flags: RunFlags{IPC: "private", UUID: "u", InterfaceVersion: 5}, class: errdefs.ErrFailedPrecondition},
		{name: "pid at 15", flags: RunFlags{PID: "parent", Net: "host", UUID: "u", InterfaceVersion: 15}, want: "--net=host --pid=parent u"},
		{name: "pid needs 15", flags: RunFlags{PID: "parent", UUID: "u", InterfaceVersion: 14}, class: errdefs.ErrFailedPrecondition},
		{name: "mutable at 11", flags: RunFlags{Mutable: true, Net: "host", UUID: "u", InterfaceVersion: 11}, want: "--net=host --mutable u"},
		{name: "mutable needs 11", flags: RunFlags{Mutable: true, UUID: "u", InterfaceVersion: 10}, class: errdefs.ErrFailedPrecondition},
		{name: "no uuid", flags: RunFlags{InterfaceVersion: 6}, class: errdefs.ErrInvalidArgument},
		{
			name: "private users at version 10", flags: RunFlags{PrivateUsers: "524288:65536", UUID: "u", InterfaceVersion: 10},
			want: "--net=default --private-users=524288:65536 u",
		},
		{name: "private users needs 10", flags: RunFlags{PrivateUsers: "524288:65536", UUID: "u", InterfaceVersion: 9}, class: errdefs.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RunArgs(tt.flags)
			if tt.class != nil {
				if !errors.Is(err, tt.class) {
					t.Fatalf("RunArgs = %v, %v; want class %v", got, err, tt.class)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != tt.want {
				t.Fatalf("RunArgs = %q, %v; want %q", strings.Join(got, " "), err, tt.want)
			}
		})
	}
}

func TestCheckDNSConfMode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "empty", in: "", ok: true},
		{name: "both", in: "resolv=host,hosts=default", ok: true},
		{name: "none", in: "resolv=none", ok: true},
		{name: "stage0 refused", in: "resolv=stage0"},
		{name: "unknown key", in: "dns=host"},
		{name: "no value", in: "resolv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckDNSConfMode(tt.in); (err == nil) != tt.ok {
				t.Fatalf("CheckDNSConfMode(%q) = %v", tt.in, err)
			}
		})
	}
}

func TestAppArgs(t *testing.T) {
	tests := []struct {
		name  string
		flags AppFlags
		want  string
		class error
	}{
		{name: "minimal", flags: AppFlags{UUID: "u", App: "web"}, want: "--uuid=u --app=web"},
		{name: "debug", flags: AppFlags{Debug: true, UUID: "u", App: "web"}, want: "--debug --uuid=u --app=web"},
		{
			name: "disable flags", flags: AppFlags{UUID: "u", App: "a", DisableCapabilities: true, DisablePaths: true, DisableSeccomp: true},
			want: "--disable-capabilities-restriction --disable-paths --disable-seccomp --uuid=u --app=a",
		},
		{name: "no uuid", flags: AppFlags{App: "web"}, class: errdefs.ErrInvalidArgument},
		{name: "no app", flags: AppFlags{UUID: "u"}, class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppArgs(tt.flags)
			if tt.class != nil {
				if !errors.Is(err, tt.class) {
					t.Fatalf("AppArgs(%+v) = %q, %v; want %v", tt.flags, got, err, tt.class)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != tt.want {
				t.Fatalf("AppArgs(%+v) = %q, %v; want %q", tt.flags, got, err, tt.want)
			}
		})
	}
}

func TestCheckApps(t *testing.T) {
	all := Entrypoints{AppAdd: "/a", AppStart: "/s", AppStop: "/p", AppRm: "/r", Version: 11}
	tests := []struct {
		name string
		eps  func(Entrypoints) Entrypoints
		want string // in the error; "" for none
	}{
		{name: "all four at 11", eps: func(e Entrypoints) Entrypoints { return e }},
		{name: "version 10", eps: func(e Entrypoints) Entrypoints { e.Version = 10; return e }, want: "interface version 10"},
		{name: "no entrypoints (fly)", eps: func(Entrypoints) Entrypoints { return Entrypoints{Version: 11} }, want: "coreos.com/rkt/stage1/app/add"},
		{name: "no rm", eps: func(e Entrypoints) Entrypoints { e.AppRm = ""; return e }, want: "coreos.com/rkt/stage1/app/rm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.eps(all).CheckApps()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckApps() = %v; want a failed precondition mentioning %q", err, tt.want)
			}
		})
	}
}
