package podnet

import (
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/nosecone/nscn/networking/netrecord"
)

func TestNetFiles(t *testing.T) {
	ipnet := func(s string) net.IPNet {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return *n
	}
	withDNS := &types100.Result{DNS: types.DNS{Nameservers: []string{"172.16.28.1"}, Search: []string{"pod.test"}}}
	badDNS := &types100.Result{DNS: types.DNS{Nameservers: []string{"172.16.28.1"}, Search: []string{"a\nnameserver 6.6.6.6"}}}
	tests := []struct {
		name       string
		nets       []netrecord.Attachment
		wantHosts  string
		wantResolv string // "" means none
	}{
		{name: "none", wantHosts: "127.0.1.1\tweb1\n"},
		{
			name: "default without DNS", nets: []netrecord.Attachment{{Name: "default", IPs: []net.IPNet{ipnet("172.16.28.5/24")}, Result: &types100.Result{}}},
			wantHosts: "172.16.28.5\tweb1\n",
		},
		{name: "second network's DNS", nets: []netrecord.Attachment{
			{Name: "default", IPs: []net.IPNet{ipnet("172.16.28.5/24")}, Result: &types100.Result{}},
			{Name: "lab", IPs: []net.IPNet{ipnet("10.251.77.9/24")}, Result: withDNS},
		}, wantHosts: "172.16.28.5\tweb1\n", wantResolv: "nameserver 172.16.28.1\nsearch pod.test\n"},
		{
			name: "malformed DNS is dropped", nets: []netrecord.Attachment{{Name: "x", IPs: []net.IPNet{ipnet("10.0.0.2/24")}, Result: badDNS}},
			wantHosts: "10.0.0.2\tweb1\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts, resolv := NetFiles("web1", tt.nets)
			if !strings.Contains(string(hosts), tt.wantHosts) || !strings.Contains(string(hosts), "127.0.0.1\tlocalhost") {
				t.Errorf("hosts %q, want %q and localhost", hosts, tt.wantHosts)
			}
			if (tt.wantResolv == "") != (resolv == nil) || !strings.Contains(string(resolv), tt.wantResolv) {
				t.Errorf("resolv.conf %q, want %q", resolv, tt.wantResolv)
			}
		})
	}
}

func TestGateway(t *testing.T) {
	gw := net.ParseIP("172.16.28.1")
	a := netrecord.Attachment{Result: &types100.Result{IPs: []*types100.IPConfig{{Gateway: gw}}}}
	if got := Gateway(a); !got.Equal(gw) {
		t.Errorf("Gateway = %v, want %v", got, gw)
	}
	if Gateway(netrecord.Attachment{}) != nil {
		t.Error("Gateway without a result is not nil")
	}
}
