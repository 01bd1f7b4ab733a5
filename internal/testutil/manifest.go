package testutil

import (
	"encoding/json"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// RuntimeApp is a pod manifest's app named name, running app, of an image
// with a fixed ID.
func RuntimeApp(t testing.TB, name string, app *types.App) schema.RuntimeApp {
	t.Helper()
	h, err := types.NewHash("sha512-" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	return schema.RuntimeApp{Name: *types.MustACName(name), Image: schema.RuntimeImage{ID: *h}, App: app}
}

// PodManifest is a pod manifest of apps and vols, run through JSON as
// stage0 writes it, so that the schema's validation and defaults apply.
func PodManifest(t testing.TB, apps []schema.RuntimeApp, vols []types.Volume) *schema.PodManifest {
	t.Helper()
	pm := schema.BlankPodManifest()
	pm.Apps = apps
	pm.Volumes = vols
	data, err := json.Marshal(pm)
	if err != nil {
		t.Fatalf("marshal pod manifest: %v", err)
	}
	var out schema.PodManifest
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("unmarshal pod manifest: %v", err)
	}
	return &out
}
