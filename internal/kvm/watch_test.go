package kvm

import (
	"strings"
	"testing"
)

func TestWatch(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		failed bool
	}{
		{name: "warnings only", writes: []string{"qemu-system-x86_64: warning: host doesn't support requested feature\n"}},
		{name: "in one write", writes: []string{"KVM internal error. Suberror: 1\nemulation failure\n"}, failed: true},
		{name: "split between writes", writes: []string{"boot...\nKVM inter", "nal error. Suberror: 1\n"}, failed: true},
		{name: "twice, reported once", writes: []string{"KVM internal error\n", "KVM internal error\n"}, failed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			calls := 0
			w := Watch(&out, InternalError, func() { calls++ })
			for _, s := range tt.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			if (calls == 1) != tt.failed || calls > 1 {
				t.Fatalf("failed called %d times, want failed=%v", calls, tt.failed)
			}
			if out.String() != strings.Join(tt.writes, "") {
				t.Fatalf("passed on %q", out.String())
			}
		})
	}
}
