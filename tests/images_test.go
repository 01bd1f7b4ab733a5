//go:build functional

package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// entry is one file of a test image's rootfs.
type entry struct {
	path    string // below rootfs, e.g. "/etc/x"
	content string
	link    string // symlink target, when set
	dir     bool
}

// manifestJSON renders a minimal image manifest.
func manifestJSON(t *testing.T, name string, labels map[string]string, deps []map[string]any, whitelist []string) []byte {
	t.Helper()
	m := map[string]any{
		"acKind":    "ImageManifest",
		"acVersion": "0.8.11",
		"name":      name,
	}
	var ls []map[string]string
	for k, v := range labels {
		ls = append(ls, map[string]string{"name": k, "value": v})
	}
	if ls != nil {
		m["labels"] = ls
	}
	if deps != nil {
		m["dependencies"] = deps
	}
	if whitelist != nil {
		m["pathWhitelist"] = whitelist
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildACI makes a gzip ACI with actool, the appc reference tool.
func buildACI(t *testing.T, manifest []byte, files []entry) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "layout", "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case f.dir:
			err = os.MkdirAll(p, 0o755)
		case f.link != "":
			err = os.Symlink(f.link, p)
		default:
			err = os.WriteFile(p, []byte(f.content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "layout", "manifest"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.aci")
	if b, err := exec.Command(actool(t), "build", "--overwrite", filepath.Join(dir, "layout"), out).CombinedOutput(); err != nil { //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		t.Fatalf("actool build: %v\n%s", err, b)
	}
	return out
}
