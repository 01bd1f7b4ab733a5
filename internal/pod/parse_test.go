package pod

import (
	"errors"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		min     int
		want    int
		wantErr bool
	}{
		{name: "with newline", in: "1234\n", min: 1, want: 1234},
		{name: "bare", in: "0", min: 0, want: 0},
		{name: "spaces", in: "  7 \n", min: 0, want: 7},
		{name: "below min", in: "0\n", min: 1, wantErr: true},
		{name: "negative", in: "-1", min: 0, wantErr: true},
		{name: "plus sign", in: "+1", min: 0, wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "two numbers", in: "1 2", wantErr: true},
		{name: "hex", in: "0x10", wantErr: true},
		{name: "overflow", in: strings.Repeat("9", 30), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDecimal([]byte(tt.in), tt.min)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseDecimal(%q) error %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not InvalidArgument", err)
			}
			if got != tt.want {
				t.Errorf("parseDecimal(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseDecimal checks that parseDecimal never panics, accepts only
// what it can print back, and classifies its errors.
func FuzzParseDecimal(f *testing.F) {
	f.Add([]byte("1234\n"), 1)
	f.Add([]byte("-5"), 0)
	f.Fuzz(func(t *testing.T, b []byte, floor int) {
		n, err := parseDecimal(b, floor)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if n < floor || n < 0 {
			t.Fatalf("parseDecimal(%q, %d) = %d", b, floor, n)
		}
		back, err := parseDecimal([]byte(strconv.Itoa(n)), floor)
		if err != nil || back != n {
			t.Fatalf("round trip of %d: %d, %v", n, back, err)
		}
	})
}

// FuzzValidUUID checks that the directory-name filter only accepts what
// Get accepts as a full UUID, so that no entry can escape a state
// directory.
func FuzzValidUUID(f *testing.F) {
	f.Add("1a2b3c4d-0000-4000-8000-000000000001")
	f.Add("../../../../../../etc/passwd")
	f.Fuzz(func(t *testing.T, s string) {
		if !validUUID(s) {
			return
		}
		if strings.ContainsAny(s, "/.\x00") || len(s) != 36 || strings.ToLower(s) != s {
			t.Fatalf("validUUID accepted %q", s)
		}
	})
}

func FuzzParseCgroupPath(f *testing.F) {
	for _, s := range []string{"/nscn/abc\n", "/", "", "a/b", "/a/../b", "/a\n/b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCgroupPath(b)
		if err != nil {
			return
		}
		if !strings.HasPrefix(c, "/") || strings.ContainsAny(c, "\n\x00") || path.Clean(c) != c {
			t.Fatalf("accepted %q as %q", b, c)
		}
	})
}
