package guest

import "testing"

func TestCheckUnitCgroup(t *testing.T) {
	tests := []struct {
		name, cg string
		ok       bool
	}{
		{name: "the app's unit", cg: "/app-web.service", ok: true},
		{name: "below a slice", cg: "/system.slice/app-web.service", ok: true},
		{name: "another app's unit", cg: "/app-db.service"},
		{name: "a cgroup below the unit", cg: "/app-web.service/sub"},
		{name: "not clean", cg: "/x/../app-web.service"},
		{name: "relative", cg: "app-web.service"},
		{name: "the root", cg: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkUnitCgroup(tt.cg, "web")
			if tt.ok != (err == nil) || (tt.ok && got != tt.cg) {
				t.Fatalf("checkUnitCgroup(%q) = %q, %v; want ok=%v", tt.cg, got, err, tt.ok)
			}
		})
	}
}
