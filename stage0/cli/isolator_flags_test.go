package cli

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestIsolatorFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // the isolators as JSON, or the error's text
		err  bool
	}{
		{name: "none", args: []string{"img"}, want: "null"},
		{
			name: "cpu shares", args: []string{"img", "--cpu-shares=512"},
			want: `[{"name":"os/linux/cpu-shares","value":512}]`,
		},
		{
			name: "oom score adj", args: []string{"img", "--oom-score-adj=-500"},
			want: `[{"name":"os/linux/oom-score-adj","value":-500}]`,
		},
		{
			name: "caps retain short names", args: []string{"img", "--caps-retain=net_bind_service,CAP_CHOWN"},
			want: `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_NET_BIND_SERVICE","CAP_CHOWN"]}}]`,
		},
		{
			name: "caps remove pod-wide", args: []string{"--caps-remove=CAP_MKNOD", "img"},
			want: `[{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_MKNOD"]}}]`,
		},
		{
			name: "seccomp remove errno", args: []string{"img", "--seccomp", "mode=remove,errno=ENOTSUP,chmod,fchmodat"},
			want: `[{"name":"os/linux/seccomp-remove-set","value":{"set":["chmod","fchmodat"],"errno":"ENOTSUP"}}]`,
		},
		{
			name: "seccomp retain group", args: []string{"img", "--seccomp=mode=retain,@appc.io/all"},
			want: `[{"name":"os/linux/seccomp-retain-set","value":{"set":["@appc.io/all"],"errno":""}}]`,
		},
		{
			name: "memory and cpu", args: []string{"img", "--memory=64Mi", "--cpu=500m"},
			want: `[{"name":"resource/memory","value":{"default":false,"request":"64Mi","limit":"64Mi"}},{"name":"resource/cpu","value":{"default":false,"request":"500m","limit":"500m"}}]`,
		},
		{name: "cpu shares not a number", args: []string{"img", "--cpu-shares=lots"}, err: true, want: "--cpu-shares"},
		{name: "cpu shares out of range", args: []string{"img", "--cpu-shares=1"}, err: true, want: "--cpu-shares"},
		{name: "oom out of range", args: []string{"img", "--oom-score-adj=1001"}, err: true, want: "--oom-score-adj"},
		{name: "oom not a number", args: []string{"img", "--oom-score-adj=x"}, err: true, want: "--oom-score-adj"},
		{name: "caps both", args: []string{"img", "--caps-retain=CAP_CHOWN", "--caps-remove=CAP_MKNOD"}, err: true, want: "together"},
		{name: "caps empty name", args: []string{"img", "--caps-retain=CAP_CHOWN,"}, err: true, want: "empty capability"},
		{name: "caps prefix only", args: []string{"img", "--caps-retain=CAP_"}, err: true, want: "empty capability"},
		{name: "caps bad name", args: []string{"img", "--caps-remove=CAP-1"}, err: true, want: "not a capability name"},
		{name: "caps unknown name", args: []string{"img", "--caps-retain=CAP_NOPE"}, err: true, want: "not a capability nscn knows"},
		{name: "seccomp no mode", args: []string{"img", "--seccomp=chmod"}, err: true, want: "mode=retain or mode=remove"},
		{name: "seccomp bad mode", args: []string{"img", "--seccomp=mode=deny,chmod"}, err: true, want: "neither retain nor remove"},
		{name: "seccomp no syscalls", args: []string{"img", "--seccomp=mode=remove,errno=EPERM"}, err: true, want: "no syscalls"},
		{name: "seccomp bad errno", args: []string{"img", "--seccomp=mode=remove,errno=perm,chmod"}, err: true, want: "errno"},
		{name: "seccomp unknown key", args: []string{"img", "--seccomp=mode=remove,action=kill,chmod"}, err: true, want: "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra, err := parseRunArgs(tt.args, "")
			if err != nil {
				t.Fatal(err)
			}
			isos, err := isolatorFlags(ra, &ra.apps[0])
			if tt.err {
				if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want a one-line invalid argument mentioning %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(isos)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("isolators\n got %s\nwant %s", b, tt.want)
			}
		})
	}
}

func FuzzParseSeccompFlag(f *testing.F) {
	for _, s := range []string{"mode=remove,errno=EPERM,chmod", "mode=retain,@appc.io/all", "mode=,", ",,,", "errno=E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		iso, err := parseSeccompFlag(v)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not an invalid argument", err)
			}
			return
		}
		if iso == nil || iso.Value() == nil {
			t.Fatalf("no isolator and no error for %q", v)
		}
	})
}
