package main

import (
	"maps"
	"slices"
	"strings"
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

func TestParseLdd(t *testing.T) {
	tests := []struct {
		name, out string
		want      []string
	}{
		{name: "static", out: "\tnot a dynamic executable\n", want: nil},
		{
			name: "dynamic",
			out: "\tlinux-vdso.so.1 (0x00007ffd)\n" +
				"\tlibsystemd-shared-252.so => /usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so (0x00007f)\n" +
				"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n" +
				"\tlibmissing.so => not found\n" +
				"\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n",
			want: []string{"/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseLdd(tt.out); !slices.Equal(got, tt.want) {
				t.Fatalf("parseLdd = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseLdd(f *testing.F) {
	f.Add("\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n")
	f.Add("\tnot a dynamic executable\n")
	f.Add("=> /x\n/ (\n")
	f.Fuzz(func(t *testing.T, out string) {
		for _, p := range parseLdd(out) {
			if !strings.HasPrefix(p, "/") {
				t.Fatalf("parseLdd(%q) returned %q, not an absolute path", out, p)
			}
		}
	})
}
