package isolate

import "testing"

func TestIsIdentityMap(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "the host's", in: "         0          0 4294967295\n", want: true},
		{name: "a pod's", in: "         0  815726592      65536\n", want: false},
		{name: "a part of the host's", in: "0 0 65536\n", want: false},
		{name: "two lines", in: "0 0 4294967295\n0 0 1\n", want: false},
		{name: "empty", in: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isIdentityMap(tt.in); got != tt.want {
				t.Errorf("isIdentityMap(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
