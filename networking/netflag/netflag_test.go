package netflag

import (
	"errors"
	"reflect"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Nets
		wantErr bool
	}{
		{name: "empty means default", in: "", want: Nets{{Name: "default"}}},
		{name: "default", in: "default", want: Nets{{Name: "default"}}},
		{name: "host", in: "host", want: Nets{{Name: "host"}}},
		{name: "none", in: "none", want: Nets{{Name: "none"}}},
		{name: "list", in: "default,mynet", want: Nets{{Name: "default"}, {Name: "mynet"}}},
		{name: "args", in: "default:IP=172.16.28.42", want: Nets{{Name: "default", Args: [][2]string{{"IP", "172.16.28.42"}}}}},
		{name: "several args", in: "a:K=V;K2=v=2,b", want: Nets{{Name: "a", Args: [][2]string{{"K", "V"}, {"K2", "v=2"}}}, {Name: "b"}}},
		{name: "empty value", in: "a:K=", want: Nets{{Name: "a", Args: [][2]string{{"K", ""}}}}},
		{name: "colon in value", in: "a:K=x:y", want: Nets{{Name: "a", Args: [][2]string{{"K", "x:y"}}}}},
		{name: "duplicate", in: "default,default", wantErr: true},
		{name: "host with others", in: "host,default", wantErr: true},
		{name: "none with others", in: "default,none", wantErr: true},
		{name: "host with args", in: "host:K=V", wantErr: true},
		{name: "empty item", in: "default,", wantErr: true},
		{name: "bad name", in: "my net", wantErr: true},
		{name: "leading dash", in: "-net", wantErr: true},
		{name: "arg without =", in: "a:K", wantErr: true},
		{name: "empty args", in: "a:", wantErr: true},
		{name: "empty key", in: "a:=V", wantErr: true},
		{name: "repeated key", in: "a:K=1;K=2", wantErr: true},
		{name: "newline in a value", in: "a:K=x\ny", wantErr: true},
		{name: "escape in a key", in: "a:K\x1b=x", wantErr: true},
		{name: "newline in a name", in: "a\nb", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("Parse(%q) = %v, %v; want an invalid-argument error", tt.in, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNetsHostNone(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		host, none bool
	}{
		{name: "host", in: "host", host: true},
		{name: "none", in: "none", none: true},
		{name: "default", in: "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if n.Host() != tt.host || n.None() != tt.none {
				t.Fatalf("Host, None = %v, %v; want %v, %v", n.Host(), n.None(), tt.host, tt.none)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"default", "host", "a:K=V;K2=W,b", "default,default", "x:IP=1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nets, err := Parse(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Parse(%q): error %v is not classified", s, err)
			}
			return
		}
		if len(nets) == 0 {
			t.Fatalf("Parse(%q) returned no network", s)
		}
		again, err := Parse(nets.String())
		if err != nil || !reflect.DeepEqual(again, nets) {
			t.Fatalf("round trip of %q via %q: %#v, %v; want %#v", s, nets.String(), again, err, nets)
		}
	})
}
