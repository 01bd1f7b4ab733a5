package prepare

import (
	"encoding/json"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// TestFlagIsolatorsReplaceConflictingOnes checks that an isolator from a
// run flag replaces the image's of the same name and the one it cannot be
// used with (a retain-set and a remove-set of the same kind).
func TestFlagIsolatorsReplaceConflictingOnes(t *testing.T) {
	var image types.Isolators
	if err := json.Unmarshal([]byte(`[
		{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_MKNOD"]}},
		{"name":"resource/memory","value":{"limit":"1Gi"}},
		{"name":"os/linux/oom-score-adj","value":100}]`), &image); err != nil {
		t.Fatal(err)
	}
	retain, err := types.NewLinuxCapabilitiesRetainSet("CAP_CHOWN")
	if err != nil {
		t.Fatal(err)
	}
	retainIso, err := retain.AsIsolator()
	if err != nil {
		t.Fatal(err)
	}
	oom, err := types.NewLinuxOOMScoreAdj(-5)
	if err != nil {
		t.Fatal(err)
	}
	m := &schema.ImageManifest{App: &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0", Isolators: image}}
	app, err := effectiveApp(m, App{Isolators: types.Isolators{*retainIso, oom.AsIsolator()}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, iso := range app.Isolators {
		names = append(names, iso.Name.String())
	}
	want := []string{"resource/memory", "os/linux/capabilities-retain-set", "os/linux/oom-score-adj"}
	if len(names) != len(want) {
		t.Fatalf("isolators %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("isolators %v, want %v", names, want)
		}
	}
	if v := app.Isolators[2].Value().(*types.LinuxOOMScoreAdj); int(*v) != -5 {
		t.Fatalf("oom-score-adj %d, want the flag's -5", int(*v))
	}
	if len(m.App.Isolators) != 3 {
		t.Fatalf("the image's isolators were changed: %v", m.App.Isolators)
	}
}
