package idrange

import (
	"errors"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Range
		wantErr bool
	}{
		{name: "systemd container range", in: "524288:65536", want: Range{Base: 524288, Count: 65536}},
		{name: "last ID", in: "4294901759:65536", want: Range{Base: 4294901759, Count: 65536}},
		{name: "past the last ID", in: "4294901760:65536", wantErr: true},
		{name: "base 0", in: "0:65536", wantErr: true},
		{name: "empty count", in: "524288:0", wantErr: true},
		{name: "no colon", in: "524288", wantErr: true},
		{name: "negative", in: "-1:65536", wantErr: true},
		{name: "hex", in: "0x80000:65536", wantErr: true},
		{name: "too big", in: "4294967296:1", wantErr: true},
		{name: "spaces", in: " 524288:65536", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("Parse(%q) = %v, %v; want an invalid argument", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestOverlapsContainsShift(t *testing.T) {
	r := Range{Base: 131072, Count: Size}
	tests := []struct {
		name string
		o    Range
		want bool
	}{
		{name: "same", o: r, want: true},
		{name: "just below", o: Range{Base: 65536, Count: Size}, want: false},
		{name: "just above", o: Range{Base: 196608, Count: Size}, want: false},
		{name: "one ID into the top", o: Range{Base: 196607, Count: 1}, want: true},
		{name: "straddles the base", o: Range{Base: 131000, Count: 100}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Overlaps(tt.o); got != tt.want {
				t.Errorf("%v.Overlaps(%v) = %v, want %v", r, tt.o, got, tt.want)
			}
			if got := tt.o.Overlaps(r); got != tt.want {
				t.Errorf("%v.Overlaps(%v) = %v, want %v", tt.o, r, got, tt.want)
			}
		})
	}
	if !r.Contains(131072) || !r.Contains(196607) || r.Contains(196608) || r.Contains(131071) {
		t.Errorf("Contains is wrong at the edges of %v", r)
	}
	if h, ok := r.Shift(0); !ok || h != 131072 {
		t.Errorf("Shift(0) = %d, %v", h, ok)
	}
	if _, ok := r.Shift(Size); ok {
		t.Errorf("Shift(%d) is inside %v", Size, r)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"524288:65536", "0:1", "1:4294967294", "x:y", ":", "4294901758:65536"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.Check() != nil {
			t.Fatalf("Parse(%q) = %v, which Check refuses", s, r)
		}
		back, err := Parse(r.String())
		if err != nil || back != r {
			t.Fatalf("Parse(%q).String() = %q does not parse back: %v, %v", s, r.String(), back, err)
		}
	})
}
