package cri

import (
	"errors"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParseSysctls(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      map[string]string
		hostNet bool
		want    []string // path=value ns
		wantErr string
	}{
		{
			name: "ipc ones", in: map[string]string{"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100"},
			want: []string{"/proc/sys/fs/mqueue/msg_max=100 ipc", "/proc/sys/kernel/shm_rmid_forced=1 ipc"},
		},
		{
			name: "net with slashes", in: map[string]string{"net/ipv4/conf/eth0.100/forwarding": "1"},
			want: []string{"/proc/sys/net/ipv4/conf/eth0/100/forwarding=1 net"},
		},
		{name: "kernel.sem", in: map[string]string{"kernel.sem": "250 32000 32 128"}, want: []string{"/proc/sys/kernel/sem=250 32000 32 128 ipc"}},
		{name: "none", in: nil},
		{name: "not namespaced", in: map[string]string{"kernel.pid_max": "1000"}, wantErr: "not namespaced"},
		{name: "a prefix is not a name", in: map[string]string{"kernel.shm": "1"}, wantErr: "not namespaced"},
		{name: "mqueue alone", in: map[string]string{"fs.mqueue": "1"}, wantErr: "not namespaced"},
		{name: "dot dot", in: map[string]string{"net/../../kernel/pid_max": "1"}, wantErr: "not a sysctl name"},
		{name: "empty component", in: map[string]string{"net..ipv4": "1"}, wantErr: "not a sysctl name"},
		{name: "one component", in: map[string]string{"net": "1"}, wantErr: "not a sysctl name"},
		{name: "space in a name", in: map[string]string{"net.ipv4.ip forward": "1"}, wantErr: "not a sysctl name"},
		{name: "two lines", in: map[string]string{"kernel.msgmax": "1\n2"}, wantErr: "one line"},
		{name: "net with the host's network", in: map[string]string{"net.ipv4.ip_forward": "1"}, hostNet: true, wantErr: "host's network"},
		{name: "ipc with the host's network", in: map[string]string{"kernel.msgmax": "1"}, hostNet: true, want: []string{"/proc/sys/kernel/msgmax=1 ipc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSysctls(tc.in, tc.hostNet)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want an InvalidArgument mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, x := range got {
				s = append(s, x.path+"="+x.value+" "+x.ns)
			}
			if strings.Join(s, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", s, tc.want)
			}
		})
	}
}

func FuzzParseSysctls(f *testing.F) {
	f.Add("kernel.shm_rmid_forced", "1")
	f.Add("net/ipv4/conf/all/forwarding", "1")
	f.Add("fs.mqueue.msg_max", "100")
	f.Add("net/../x", "1")
	f.Fuzz(func(t *testing.T, name, value string) {
		ss, err := parseSysctls(map[string]string{name: value}, false)
		if err != nil {
			return
		}
		for _, s := range ss {
			// Whatever it takes stays under /proc/sys/fs/mqueue,
			// /proc/sys/kernel or /proc/sys/net, one line.
			under := strings.HasPrefix(s.path, "/proc/sys/net/") || strings.HasPrefix(s.path, "/proc/sys/kernel/") || strings.HasPrefix(s.path, "/proc/sys/fs/mqueue/")
			if strings.Contains(s.path, "/../") || strings.HasSuffix(s.path, "/..") || !under {
				t.Fatalf("%q → %q", name, s.path)
			}
			if strings.ContainsAny(s.value, "\n\x00") {
				t.Fatalf("value %q taken", s.value)
			}
		}
	})
}
