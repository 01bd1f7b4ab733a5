//go:build functional

package registry

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"
)

// TestLocalLayoutsAndArchives runs the image from copies skopeo made of
// it: an OCI image layout directory (by its ref name, and alone without
// one), an OCI archive and a docker-archive (`docker save` format).
func TestLocalLayoutsAndArchives(t *testing.T) {
	testutil.RequiresCommand(t, "skopeo")
	reg := startRegistry(t, registryOpts{})
	reg.push("greet:v1", greetImage(t))
	src := "docker://" + reg.host + "/greet:v1"
	work := t.TempDir()
	layout, single := filepath.Join(work, "layout"), filepath.Join(work, "single")
	ociArchive, dockerArchive := filepath.Join(work, "greet-oci.tar"), filepath.Join(work, "greet-docker.tar")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, dst := range []string{
		"oci:" + layout + ":greet",
		"oci:" + layout + ":other",
		"oci:" + single,
		"oci-archive:" + ociArchive,
		"docker-archive:" + dockerArchive + ":greet:v1",
	} {
		if _, err := runTool(ctx, "skopeo", "copy", "--insecure-policy", "--src-tls-verify=false", src, dst); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, image string
	}{
		{name: "oci layout by ref", image: "oci:" + layout + ":greet"},
		{name: "oci layout with one image", image: "oci:" + single},
		{name: "oci-archive", image: "oci-archive:" + ociArchive},
		{name: "docker-archive", image: "docker-archive:" + dockerArchive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.ok(runArgs(t, "image", tt.image)...)
			if !slices.Contains(lines(r.stdout), greetOutput) {
				t.Fatalf("want %q:\n%s", greetOutput, r)
			}
		})
	}
}
