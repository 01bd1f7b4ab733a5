//go:build functional && (nspawn || kvm)

package tests

import (
	"slices"
	"testing"
)

// requireNetRestored leaves out only what names another pod: what
// names one of the env's pods, or no pod, is counted.
func TestOwnNetState(t *testing.T) {
	const ours, theirs = "11111111-2222-3333-4444-555555555555", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	e := &env{pods: map[string]bool{ours: true}}
	theirRule := `nat -A CNI-0123456789abcdef01234567 -d 172.16.28.0/24 -m comment --comment "name: \"default\" id: \"` + theirs + `\"" -j ACCEPT`
	ourRule := `nat -A CNI-fedcba9876543210fedcba98 -d 172.16.28.0/24 -m comment --comment "name: \"default\" id: \"` + ours + `\"" -j ACCEPT`
	now := netState{
		linkNS:   map[string]string{"veth0theirs": "nscn-" + theirs, "veth1ours": "nscn-" + ours},
		iptables: []string{theirRule, ourRule},
	}
	diff := []string{
		"nscn-" + theirs, "nscn-" + ours, "veth0theirs", "veth1ours", "nscntest0",
		theirRule, ourRule, "nat :CNI-0123456789abcdef01234567", "nat :CNI-fedcba9876543210fedcba98",
		"filter -A FORWARD -j DROP",
	}
	own, others := e.ownNetState(diff, now)
	wantOwn := []string{"nscn-" + ours, "veth1ours", "nscntest0", ourRule, "nat :CNI-fedcba9876543210fedcba98", "filter -A FORWARD -j DROP"}
	wantOthers := []string{"nscn-" + theirs, "veth0theirs", theirRule, "nat :CNI-0123456789abcdef01234567"}
	if !slices.Equal(own, wantOwn) {
		t.Errorf("counted %q, want %q", own, wantOwn)
	}
	if !slices.Equal(others, wantOthers) {
		t.Errorf("left out %q, want %q", others, wantOthers)
	}
}
