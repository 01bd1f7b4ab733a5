package main

import (
	"maps"
	"slices"
	"testing"
)

func TestParseFigures(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []int // nil: all figures
		wantErr bool
	}{
		{name: "empty means all", in: ""},
		{name: "one", in: "1", want: []int{1}},
		{name: "several with spaces", in: "1, 5,7", want: []int{1, 5, 7}},
		{name: "pull by number", in: "8", want: []int{8}},
		{name: "pull by name", in: "pull", want: []int{8}},
		{name: "name and number", in: "1,pull", want: []int{1, 8}},
		{name: "kvm by name", in: "kvm", want: []int{9}},
		{name: "cri by name", in: "cri", want: []int{10}},
		{name: "cri by number", in: "10", want: []int{10}},
		{name: "no such figure", in: "11", wantErr: true},
		{name: "zero", in: "0", wantErr: true},
		{name: "no such name", in: "push", wantErr: true},
		{name: "not a number", in: "x", wantErr: true},
		{name: "trailing comma", in: "1,", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFigures(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFigures(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			c := config{figures: got}
			for _, n := range allFigures {
				want := tt.want == nil || slices.Contains(tt.want, n)
				if c.want(n) != want {
					t.Errorf("want(%d) = %v, want %v (figures %v)", n, c.want(n), want, slices.Sorted(maps.Keys(got)))
				}
			}
		})
	}
}
