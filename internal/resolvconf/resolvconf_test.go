package resolvconf

import (
	"errors"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) { t.Helper(); testutil.Golden(t, name, got) }

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		c    Config
	}{
		{name: "full", c: Config{Nameservers: []string{"192.0.2.53", "2001:db8::53"}, Domain: "example.test", Search: []string{"a.test", "b.test"}, Options: []string{"ndots:2", "edns0"}}},
		{name: "nameserver-only", c: Config{Nameservers: []string{"192.0.2.1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.c.Check(); err != nil {
				t.Fatal(err)
			}
			golden(t, "resolv-"+tt.name+".golden", tt.c.Format("written by a test"))
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		c    Config
	}{
		{name: "not an address", c: Config{Nameservers: []string{"dns.example"}}},
		{name: "space in search", c: Config{Search: []string{"a b"}}},
		{name: "newline in option", c: Config{Options: []string{"x\nnameserver 1.2.3.4"}}},
		{name: "comment in domain", c: Config{Domain: "a#b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.c.Check(); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Check = %v, want invalid argument", err)
			}
		})
	}
	if !(Config{}).Empty() || (Config{Domain: "x"}).Empty() {
		t.Error("Empty is wrong")
	}
}

func TestParseHostsEntry(t *testing.T) {
	tests := []struct {
		name, in string
		want     HostsEntry
		wantErr  bool
	}{
		{name: "one name", in: "192.0.2.7=db", want: HostsEntry{IP: "192.0.2.7", Names: []string{"db"}}},
		{name: "two names v6", in: "2001:db8::1=a.test,b", want: HostsEntry{IP: "2001:db8::1", Names: []string{"a.test", "b"}}},
		{name: "no name", in: "192.0.2.7=", wantErr: true},
		{name: "no equals", in: "192.0.2.7", wantErr: true},
		{name: "bad ip", in: "host=db", wantErr: true},
		{name: "space in name", in: "192.0.2.7=a b", wantErr: true},
		{name: "leading dash", in: "192.0.2.7=-a", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHostsEntry(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("ParseHostsEntry(%q) = %v, want invalid argument", tt.in, err)
				}
				return
			}
			if err != nil || got.IP != tt.want.IP || len(got.Names) != len(tt.want.Names) {
				t.Fatalf("ParseHostsEntry(%q) = %+v, %v", tt.in, got, err)
			}
		})
	}
}

func TestHosts(t *testing.T) {
	golden(t, "hosts.golden", Hosts("written by a test", []HostsEntry{
		{IP: "172.16.28.5", Names: []string{"web1"}},
		{IP: "192.0.2.7", Names: []string{"db", "db.test"}},
	}))
}

func FuzzParseHostsEntry(f *testing.F) {
	f.Add("192.0.2.7=db")
	f.Add("::1=a,b")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseHostsEntry(s)
		if err != nil {
			return
		}
		// An accepted entry is one well-formed hosts line.
		line := string(Hosts("", []HostsEntry{e}))
		for _, n := range e.Names {
			if !validHostname(n) {
				t.Fatalf("accepted name %q", n)
			}
		}
		if len(line) == 0 {
			t.Fatal("empty output")
		}
	})
}
