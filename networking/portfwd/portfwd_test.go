package portfwd

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    types.ExposedPort
		wantErr bool
	}{
		{name: "port only", in: "http:8080", want: types.ExposedPort{Name: "http", HostPort: 8080}},
		{name: "ipv4 host", in: "http:127.0.0.1:8080", want: types.ExposedPort{Name: "http", HostPort: 8080, HostIP: net.IPv4(127, 0, 0, 1).To4()}},
		{name: "ipv6 host", in: "dns-udp:[::1]:53", want: types.ExposedPort{Name: "dns-udp", HostPort: 53, HostIP: net.ParseIP("::1")}},
		{name: "no port", in: "http", wantErr: true},
		{name: "empty port", in: "http:", wantErr: true},
		{name: "zero", in: "http:0", wantErr: true},
		{name: "too big", in: "http:65536", wantErr: true},
		{name: "plus sign", in: "http:+80", wantErr: true},
		{name: "bad name", in: "HTTP:80", wantErr: true},
		{name: "bad ip", in: "http:1.2.3:80", wantErr: true},
		{name: "ipv6 without brackets", in: "http:::1:80", wantErr: true},
		{name: "ipv4 in brackets", in: "http:[1.2.3.4]:80", wantErr: true},
		{name: "zone", in: "http:[fe80::1%eth0]:80", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("Parse(%q) = %v, %v; want invalid argument", tt.in, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			}
			if s := Format(got); s != tt.in {
				t.Fatalf("Format = %q, want %q", s, tt.in)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"http:8080", "http:127.0.0.1:8080", "dns:[::1]:53", "x:[::ffff:1.2.3.4]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := Parse(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		again, err := Parse(Format(ep))
		if err != nil || !reflect.DeepEqual(again, ep) {
			t.Fatalf("round trip of %q via %q: %#v, %v; want %#v", s, Format(ep), again, err, ep)
		}
	})
}

func TestResolve(t *testing.T) {
	app := []types.Port{
		{Name: "http", Protocol: "tcp", Port: 80},
		{Name: "dns", Protocol: "UDP", Port: 53},
		{Name: "range", Protocol: "tcp", Port: 9000, Count: 3},
		{Name: "weird", Protocol: "icmp", Port: 1},
	}
	tests := []struct {
		name      string
		exposed   []types.ExposedPort
		ports     []types.Port
		want      []Mapping
		wantClass error
	}{
		{
			name: "by name", exposed: []types.ExposedPort{{Name: "http", HostPort: 8080}, {Name: "dns", HostPort: 5353, HostIP: net.IPv4(127, 0, 0, 1)}}, ports: app,
			want: []Mapping{{Name: "http", HostPort: 8080, PodPort: 80, Protocol: "tcp"}, {Name: "dns", HostIP: "127.0.0.1", HostPort: 5353, PodPort: 53, Protocol: "udp"}},
		},
		{
			name: "count", exposed: []types.ExposedPort{{Name: "range", HostPort: 19000}}, ports: app,
			want: []Mapping{{Name: "range", HostPort: 19000, PodPort: 9000, Protocol: "tcp"}, {Name: "range", HostPort: 19001, PodPort: 9001, Protocol: "tcp"}, {Name: "range", HostPort: 19002, PodPort: 9002, Protocol: "tcp"}},
		},
		{
			name: "pod port given", exposed: []types.ExposedPort{{Name: "other", HostPort: 81, PodPort: &types.Port{Name: "other", Protocol: "tcp", Port: 8081}}},
			want: []Mapping{{Name: "other", HostPort: 81, PodPort: 8081, Protocol: "tcp"}},
		},
		{name: "unknown name", exposed: []types.ExposedPort{{Name: "nope", HostPort: 1}}, ports: app, wantClass: errdefs.ErrNotFound},
		{name: "bad protocol", exposed: []types.ExposedPort{{Name: "weird", HostPort: 1}}, ports: app, wantClass: errdefs.ErrInvalidArgument},
		{name: "range too far", exposed: []types.ExposedPort{{Name: "range", HostPort: 65534}}, ports: app, wantClass: errdefs.ErrInvalidArgument},
		{name: "same host port twice", exposed: []types.ExposedPort{{Name: "http", HostPort: 8080}, {Name: "range", HostPort: 8078}}, ports: app, wantClass: errdefs.ErrAlreadyExists},
		{name: "apps disagree", exposed: []types.ExposedPort{{Name: "http", HostPort: 8080}}, ports: append([]types.Port{{Name: "http", Protocol: "tcp", Port: 81}}, app...), wantClass: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.exposed, tt.ports)
			if tt.wantClass != nil {
				if !errors.Is(err, tt.wantClass) {
					t.Fatalf("Resolve = %v, %v; want class %v", got, err, tt.wantClass)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Resolve = %#v, %v; want %#v", got, err, tt.want)
			}
		})
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// livePod makes a pod directory (<root>/pods/run/<uuid>) with a network
// record, so that its claims count as alive.
func livePod(t *testing.T, root, uuid string) string {
	t.Helper()
	dir := filepath.Join(root, "pods", "run", uuid)
	if err := os.MkdirAll(filepath.Join(dir, stage1abi.NetInfoDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stage1abi.NetInfoDir, "default.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestClaim(t *testing.T) {
	root, claims := t.TempDir(), t.TempDir()
	port := freePort(t)
	m := []Mapping{{Name: "http", HostPort: port, PodPort: 80, Protocol: "tcp"}, {Name: "dns", HostPort: port, PodPort: 53, Protocol: "udp"}}
	a := livePod(t, root, "aaaa")
	if err := Claim(claims, "aaaa", a, m); err != nil {
		t.Fatal(err)
	}
	if err := Claim(claims, "aaaa", a, m); err != nil {
		t.Fatalf("claiming again for the same pod: %v", err)
	}
	b := livePod(t, root, "bbbb")
	err := Claim(claims, "bbbb", b, m[:1])
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second pod's claim = %v, want already exists", err)
	}

	// The pod moves to exited-garbage: its claim stays alive.
	moved := filepath.Join(root, "pods", "exited-garbage", "aaaa")
	if err := os.MkdirAll(filepath.Dir(moved), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(a, moved); err != nil {
		t.Fatal(err)
	}
	if err := Claim(claims, "bbbb", b, m[:1]); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("claim of a moved pod's port = %v, want already exists", err)
	}

	// Torn down (no records left): the claim is stale and taken over.
	if err := os.RemoveAll(filepath.Join(moved, stage1abi.NetInfoDir)); err != nil {
		t.Fatal(err)
	}
	if err := Claim(claims, "bbbb", b, m[:1]); err != nil {
		t.Fatalf("taking over a stale claim: %v", err)
	}
	if err := Release(claims, "bbbb"); err != nil {
		t.Fatal(err)
	}
	if err := Release(claims, "aaaa"); err != nil {
		t.Fatal(err)
	}
	if err := Release(claims, "aaaa"); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if entries, _ := os.ReadDir(claims); len(entries) != 0 {
		t.Fatalf("claims left: %v", entries)
	}
}

func TestClaimPortInUseOnHost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	port := l.Addr().(*net.TCPAddr).Port
	claims := t.TempDir()
	pod := livePod(t, t.TempDir(), "cccc")
	err = Claim(claims, "cccc", pod, []Mapping{
		{Name: "ok", HostPort: freePort(t), PodPort: 1, Protocol: "tcp"},
		{Name: "http", HostPort: port, PodPort: 80, Protocol: "tcp"},
	})
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("Claim of a bound port = %v, want already exists", err)
	}
	if entries, _ := os.ReadDir(claims); len(entries) != 0 {
		t.Fatalf("a failed Claim left claims behind: %v", entries)
	}
}
