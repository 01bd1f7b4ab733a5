package guest

import (
	"strings"
	"testing"
)

func TestModuleParams(t *testing.T) {
	tests := []struct {
		name    string
		cmdline []string
		mod     string
		want    string
	}{
		{name: "none", cmdline: []string{"console=ttyS0", "quiet"}, mod: "virtio_mmio", want: ""},
		{name: "two of one module", cmdline: []string{"virtio_mmio.device=4K@0xd0000000:5", "quiet", "virtio_mmio.device=4K@0xd0001000:6"}, mod: "virtio_mmio", want: "device=4K@0xd0000000:5 device=4K@0xd0001000:6"},
		{name: "dashes and underscores alike", cmdline: []string{"virtio-mmio.device=x"}, mod: "virtio_mmio", want: "device=x"},
		{name: "another module's", cmdline: []string{"virtio_net.napi_tx=1", "virtio.x=1"}, mod: "virtio", want: "x=1"},
		{name: "a value with a dot is not a module", cmdline: []string{"root=a.b", "ip=1.2.3.4"}, mod: "a", want: ""},
		{name: "empty parameter", cmdline: []string{"fuse."}, mod: "fuse", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := moduleParams(tt.cmdline, tt.mod); got != tt.want {
				t.Fatalf("moduleParams(%q, %q) = %q, want %q", tt.cmdline, tt.mod, got, tt.want)
			}
		})
	}
}

func TestWantsBootMarker(t *testing.T) {
	tests := []struct {
		cmdline string
		want    bool
	}{
		{"console=ttyS0 quiet", false},
		{"console=ttyS0 nscn.boot-marker", true},
		{"nscn.boot-marker=0", false}, // only the bare word
		{"nscn.boot-markers", false},
	}
	for _, tt := range tests {
		if got := wantsBootMarker(strings.Fields(tt.cmdline)); got != tt.want {
			t.Errorf("wantsBootMarker(%q) = %v, want %v", tt.cmdline, got, tt.want)
		}
	}
}
