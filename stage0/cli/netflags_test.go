package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestDNSFlagsPlan(t *testing.T) {
	tests := []struct {
		name       string
		f          dnsFlags
		wantMode   string
		wantResolv string // substring; "" means no file
		wantHosts  string
		wantErr    bool
	}{
		{name: "nothing", f: dnsFlags{}},
		{name: "raw mode passes through", f: dnsFlags{ConfMode: "resolv=host,hosts=none"}, wantMode: "resolv=host,hosts=none"},
		{name: "dns host", f: dnsFlags{DNS: []string{"host"}}, wantMode: "resolv=host"},
		{name: "dns none", f: dnsFlags{DNS: []string{"none"}}, wantMode: "resolv=none"},
		{
			name: "nameservers and search", f: dnsFlags{DNS: []string{"198.51.100.1", "2001:db8::1"}, Search: []string{"a.test"}, Opts: []string{"ndots:2"}, Domain: "d.test"},
			wantMode: "resolv=stage0", wantResolv: "nameserver 198.51.100.1\nnameserver 2001:db8::1\ndomain d.test\nsearch a.test\noptions ndots:2\n",
		},
		{name: "search only", f: dnsFlags{Search: []string{"a.test"}}, wantMode: "resolv=stage0", wantResolv: "search a.test\n"},
		{
			name: "hosts entries", f: dnsFlags{HostsEntries: []string{"198.51.100.7=db", "198.51.100.8=web,www"}},
			wantMode: "hosts=stage0", wantHosts: "198.51.100.7\tdb\n198.51.100.8\tweb www\n",
		},
		{name: "hosts host and dns", f: dnsFlags{HostsEntries: []string{"host"}, DNS: []string{"198.51.100.1"}}, wantMode: "resolv=stage0,hosts=host", wantResolv: "nameserver 198.51.100.1\n"},
		{name: "dns not an address", f: dnsFlags{DNS: []string{"dns.test"}}, wantErr: true},
		{name: "dns host with another", f: dnsFlags{DNS: []string{"host", "198.51.100.1"}}, wantErr: true},
		{name: "dns none with search", f: dnsFlags{DNS: []string{"none"}, Search: []string{"a"}}, wantErr: true},
		{name: "bad search", f: dnsFlags{Search: []string{"a b"}}, wantErr: true},
		{name: "hosts host with another", f: dnsFlags{HostsEntries: []string{"host", "198.51.100.7=db"}}, wantErr: true},
		{name: "bad hosts entry", f: dnsFlags{HostsEntries: []string{"db=198.51.100.7"}}, wantErr: true},
		{name: "raw mode with flags", f: dnsFlags{ConfMode: "resolv=host", DNS: []string{"198.51.100.1"}}, wantErr: true},
		{name: "raw mode stage0 refused", f: dnsFlags{ConfMode: "resolv=stage0"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.f.plan()
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("plan() = %v, want an invalid-argument error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("plan(): %v", err)
			}
			if got.ConfMode != tt.wantMode {
				t.Errorf("mode %q, want %q", got.ConfMode, tt.wantMode)
			}
			if (tt.wantResolv == "") != (got.Resolv == nil) || !strings.Contains(string(got.Resolv), tt.wantResolv) {
				t.Errorf("resolv.conf %q, want it to contain %q", got.Resolv, tt.wantResolv)
			}
			if (tt.wantHosts == "") != (got.Hosts == nil) || !strings.Contains(string(got.Hosts), tt.wantHosts) {
				t.Errorf("hosts %q, want it to contain %q", got.Hosts, tt.wantHosts)
			}
		})
	}
}

func TestParsePorts(t *testing.T) {
	eps, err := parsePorts([]string{"http:8080", "dns:127.0.0.1:5353"})
	if err != nil || len(eps) != 2 || eps[1].HostIP.String() != "127.0.0.1" || eps[0].HostPort != 8080 {
		t.Fatalf("parsePorts = %+v, %v", eps, err)
	}
	if _, err := parsePorts([]string{"http"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("parsePorts(http) = %v, want invalid argument", err)
	}
}
