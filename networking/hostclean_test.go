package networking

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestJumpRule(t *testing.T) {
	tests := []struct {
		line, chain string
		want        []string
	}{
		{
			line: `-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT`, chain: "PREROUTING",
			want: []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"},
		},
		{
			line: `-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ`, chain: "POSTROUTING",
			want: []string{"-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"},
		},
		{line: `-A POSTROUTING -s 172.16.28.0/24 -j CNI-abc`, chain: "POSTROUTING"},
		{line: `-A OUTPUT -j CNI-HOSTPORT-DNAT`, chain: "PREROUTING"},
		{line: `-P PREROUTING ACCEPT`, chain: "PREROUTING"},
		{line: `-A PREROUTING -m comment --comment "unbalanced -j CNI-HOSTPORT-DNAT`, chain: "PREROUTING"},
		{line: ``, chain: "PREROUTING"},
	}
	for _, tt := range tests {
		got, ok := jumpRule(tt.line, tt.chain)
		if ok != (tt.want != nil) || !slices.Equal(got, tt.want) {
			t.Errorf("jumpRule(%q, %s) = %q, %v; want %q", tt.line, tt.chain, got, ok, tt.want)
		}
	}
}

func FuzzSplitRule(f *testing.F) {
	f.Add(`-A POSTROUTING -m comment --comment "CNI portfwd \"x\" masquerade" -j CNI-HOSTPORT-MASQ`)
	f.Add(`-A X "`)
	f.Fuzz(func(t *testing.T, line string) {
		words, ok := splitRule(line)
		if !ok {
			return
		}
		for _, w := range words {
			if w == "" && !containsQuotes(line) {
				t.Fatalf("empty word from %q", line)
			}
		}
		_, _ = jumpRule(line, "PREROUTING")
	})
}

func containsQuotes(s string) bool { return slices.Contains([]byte(s), '"') }

func TestHostLocalDir(t *testing.T) {
	tests := []struct {
		name, conf, want string
	}{
		{name: "default", conf: `{"plugins":[{"type":"ptp","ipam":{"type":"host-local"}}]}`, want: "/var/lib/cni/networks/default"},
		{name: "mine", conf: `{"plugins":[{"type":"bridge","ipam":{"type":"host-local","dataDir":"/srv/ipam"}},{"type":"portmap"}]}`, want: "/srv/ipam/mine"},
		{name: "dhcp", conf: `{"plugins":[{"type":"macvlan","ipam":{"type":"dhcp"}}]}`},
		{name: "..", conf: `{"plugins":[{"type":"ptp","ipam":{"type":"host-local"}}]}`},
		{name: "bad", conf: `{`},
	}
	for _, tt := range tests {
		if got := hostLocalDir(tt.name, []byte(tt.conf)); got != tt.want {
			t.Errorf("hostLocalDir(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCleanHostLocalDir(t *testing.T) {
	tests := []struct {
		name      string
		files     []string
		wantGone  bool
		wantFiles []string
	}{
		{name: "bookkeeping only", files: []string{"lock", "last_reserved_ip.0"}, wantGone: true},
		{name: "a lease left", files: []string{"lock", "last_reserved_ip.0", "172.16.28.5"}, wantFiles: []string{"172.16.28.5", "last_reserved_ip.0", "lock"}},
		{name: "no lock: not host-local's", files: []string{"last_reserved_ip.0"}, wantFiles: []string{"last_reserved_ip.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "net")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := cleanHostLocalDir(dir); err != nil {
				t.Fatal(err)
			}
			ents, err := os.ReadDir(dir)
			if tt.wantGone {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("directory kept: %v %v", ents, err)
				}
				return
			}
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			if !slices.Equal(got, tt.wantFiles) {
				t.Fatalf("files %v, want %v", got, tt.wantFiles)
			}
		})
	}
}
