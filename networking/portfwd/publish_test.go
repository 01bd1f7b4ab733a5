package portfwd

import (
	"errors"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParsePublish(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string // want: FormatPublish of the result
		wantErr        bool
	}{
		{name: "ports", in: "8080:80", want: "8080:80/tcp"},
		{name: "udp", in: "5353:53/udp", want: "5353:53/udp"},
		{name: "sctp", in: "9:9/sctp", want: "9:9/sctp"},
		{name: "ipv4", in: "127.0.0.1:12000:80", want: "127.0.0.1:12000:80/tcp"},
		{name: "ipv6", in: "[::1]:12000:80/tcp", want: "[::1]:12000:80/tcp"},
		{name: "one port", in: "8080", wantErr: true},
		{name: "zero", in: "0:80", wantErr: true},
		{name: "too big", in: "65536:80", wantErr: true},
		{name: "plus", in: "+80:80", wantErr: true},
		{name: "bad proto", in: "80:80/icmp", wantErr: true},
		{name: "ipv6 without brackets", in: "::1:80:80", wantErr: true},
		{name: "brackets on ipv4", in: "[127.0.0.1]:80:80", wantErr: true},
		{name: "not an address", in: "example.org:80:80", wantErr: true},
		{name: "zone", in: "[fe80::1%eth0]:80:80", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := ParsePublish(tc.in)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("ParsePublish(%q) = %v, %v; want InvalidArgument", tc.in, ep, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublish(%q): %v", tc.in, err)
			}
			if got := FormatPublish(ep); got != tc.want {
				t.Errorf("FormatPublish(ParsePublish(%q)) = %q, want %q", tc.in, got, tc.want)
			}
			// Resolve needs no app for it.
			maps, err := Resolve([]types.ExposedPort{ep}, nil)
			if err != nil || len(maps) != 1 || maps[0].HostPort != int(ep.HostPort) || maps[0].PodPort != int(ep.PodPort.Port) {
				t.Errorf("Resolve(%v) = %v, %v", ep, maps, err)
			}
		})
	}
}

func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{"8080:80", "[::1]:1:2/udp", "127.0.0.1:12000:80/sctp", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := ParsePublish(s)
		if err != nil {
			return
		}
		again, err := ParsePublish(FormatPublish(ep))
		if err != nil || FormatPublish(again) != FormatPublish(ep) {
			t.Fatalf("%q: round trip %q: %v", s, FormatPublish(ep), err)
		}
	})
}
