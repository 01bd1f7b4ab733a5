package aci

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestLimitedReader(t *testing.T) {
	tests := []struct {
		name    string
		input   int
		max     int64
		wantN   int64
		wantErr bool
	}{
		{name: "unlimited", input: 1000, max: 0, wantN: 1000},
		{name: "negative is unlimited", input: 1000, max: -1, wantN: 1000},
		{name: "below the limit", input: 999, max: 1000, wantN: 999},
		{name: "exactly the limit", input: 1000, max: 1000, wantN: 1000},
		{name: "one byte over", input: 1001, max: 1000, wantN: 1000, wantErr: true},
		{name: "far over", input: 1 << 20, max: 10, wantN: 10, wantErr: true},
		{name: "empty input", input: 0, max: 10, wantN: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewLimitedReader(strings.NewReader(strings.Repeat("x", tt.input)), tt.max)
			var out bytes.Buffer
			// A small buffer exercises the limit across many reads.
			n, err := io.CopyBuffer(&out, struct{ io.Reader }{r}, make([]byte, 7))
			if n != tt.wantN {
				t.Errorf("read %d bytes, want %d", n, tt.wantN)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error = %v, want ErrTooLarge and InvalidArgument", err)
			}
			var le *LimitError
			if !errors.As(err, &le) || le.Limit != tt.max {
				t.Fatalf("error = %v, want a LimitError of %d bytes", err, tt.max)
			}
			// The error sticks.
			if _, err2 := r.Read(make([]byte, 1)); !errors.Is(err2, ErrTooLarge) {
				t.Fatalf("second read error = %v, want ErrTooLarge", err2)
			}
		})
	}
}
