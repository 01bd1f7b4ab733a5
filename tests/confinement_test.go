//go:build functional && (nspawn || kvm)

package tests

import (
	"strconv"
	"strings"
	"testing"
)

// procStatus returns the fields of /proc/self/status lines printed by
// the app (grep output), such as "CapBnd" → "00000000a80425fb".
func procStatus(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && !strings.Contains(k, " ") {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// capBit reports whether capability number n is in the hex mask.
func capBit(t *testing.T, mask string, n uint) bool {
	t.Helper()
	v, err := strconv.ParseUint(mask, 16, 64)
	if err != nil {
		t.Fatalf("capability mask %q: %v", mask, err)
	}
	return v&(1<<n) != 0
}

const (
	capChown  = 0
	capSysAdm = 21
	// defaultCaps is the appc default set (Documentation/isolators.md).
	defaultCaps = "00000000a80425fb"
)
