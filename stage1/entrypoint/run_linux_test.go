package entrypoint

import (
	"slices"
	"testing"

	"github.com/nosecone/nscn/stage1/nspawn"
)

// TestNspawnSeccompOff: systemd-nspawn's own filter is off for a mutable
// pod (its apps install theirs) and when the operator turned seccomp
// off, and only then.
func TestNspawnSeccompOff(t *testing.T) {
	for _, tc := range []struct {
		name              string
		disabled, mutable bool
		want              bool
	}{
		{name: "run", want: false},
		{name: "run, --insecure-options=seccomp", disabled: true, want: true},
		{name: "app sandbox", mutable: true, want: true},
		{name: "app sandbox, --insecure-options=seccomp", disabled: true, mutable: true, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nspawnSeccompOff(tc.disabled, tc.mutable)
			if got != tc.want {
				t.Fatalf("nspawnSeccompOff(%v, %v) = %v, want %v", tc.disabled, tc.mutable, got, tc.want)
			}
			if env := nspawn.Env(false, got); slices.Contains(env, "SYSTEMD_SECCOMP=0") != tc.want {
				t.Fatalf("systemd-nspawn's environment %q: SYSTEMD_SECCOMP=0 present = %v, want %v", env, !tc.want, tc.want)
			}
		})
	}
}
