package podattach

import (
	"slices"
	"strings"
	"testing"
)

func TestUnder(t *testing.T) {
	const mountinfo = `22 1 0:20 / / rw - virtiofs nscnroot rw
30 22 0:40 / /opt/stage2/web/rootfs rw - overlay overlay rw
31 30 0:5 / /opt/stage2/web/rootfs/dev rw - devtmpfs dev rw
32 22 0:41 / /opt/stage2/webby/rootfs rw - overlay overlay rw
33 22 0:20 /x /nscn/host/app/web/0 rw - virtiofs nscnroot rw
34 22 0:20 /y /nscn/host/app/web/with\040space rw - virtiofs nscnroot rw
35 30 0:42 / /opt/stage2/web/rootfs rw - tmpfs t rw
`
	tests := []struct {
		name string
		dirs []string
		want []string
	}{
		{name: "an app's rootfs, deepest first, stacked twice", dirs: []string{"/opt/stage2/web"}, want: []string{
			"/opt/stage2/web/rootfs/dev", "/opt/stage2/web/rootfs", "/opt/stage2/web/rootfs",
		}},
		{name: "not a sibling with the same prefix", dirs: []string{"/opt/stage2/webby"}, want: []string{"/opt/stage2/webby/rootfs"}},
		{name: "escaped names", dirs: []string{"/nscn/host/app/web/"}, want: []string{"/nscn/host/app/web/with space", "/nscn/host/app/web/0"}},
		{name: "nothing", dirs: []string{"/opt/stage2/db"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The order among mount points of one depth is not
			// Under's to keep: compare the sets and the depths' order.
			got := Under(mountinfo, tt.dirs)
			if !slices.Equal(sorted(got), sorted(tt.want)) || !depthsDescend(got) {
				t.Fatalf("Under = %q, want %q (deepest first)", got, tt.want)
			}
		})
	}
}

func sorted(s []string) []string { c := slices.Clone(s); slices.Sort(c); return c }

func depthsDescend(s []string) bool {
	for i := 1; i < len(s); i++ {
		if depth(s[i]) > depth(s[i-1]) {
			return false
		}
	}
	return true
}

func depth(p string) int { return strings.Count(p, "/") }
