package guest

import (
	"errors"
	"slices"
	"strings"
)

// BootMarkerParam on the kernel command line makes /init print
// BootMarker and end the guest as soon as it runs: the bench's bare boot
// of the flavor's kernel and initramfs (make bench, figure 9), the floor
// a pod's boot is compared with.
const (
	BootMarkerParam = "nscn.boot-marker"
	BootMarker      = "nscn-guest: booted"
)

// ErrBootMarker is what Init returns after printing BootMarker.
var ErrBootMarker = errors.New("boot marker printed")

// wantsBootMarker reports whether the command line has BootMarkerParam.
func wantsBootMarker(cmdline []string) bool { return slices.Contains(cmdline, BootMarkerParam) }

// moduleParams returns the parameters the kernel command line gives
// module mod ("mod.param=value" words, dashes and underscores alike in
// the module's name, as modprobe reads them), joined for finit_module.
func moduleParams(cmdline []string, mod string) string {
	want := strings.ReplaceAll(mod, "-", "_") + "."
	var params []string
	for _, w := range cmdline {
		name, rest, ok := strings.Cut(w, ".")
		if !ok || strings.ContainsRune(name, '=') || strings.ReplaceAll(name, "-", "_")+"." != want || rest == "" {
			continue
		}
		params = append(params, rest)
	}
	return strings.Join(params, " ")
}
