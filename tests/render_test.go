//go:build functional

package tests

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// files lists the regular files and symlinks under root, as "/path" or
// "/path -> target", with the content of regular files.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p) //nolint:gosec // G304: a file the test made
			out = append(out, rel+" = "+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestRenderAppliesDependenciesAndWhitelist(t *testing.T) {
	e := newEnv(t)
	// base: the lowest layer.
	base := buildACI(t, manifestJSON(t, "example.com/base", map[string]string{"version": "1"}, nil, nil), []entry{
		{path: "/etc/os-release", content: "base"},
		{path: "/etc/shared", content: "from base"},
		{path: "/usr/lib/libdropped.so", content: "not whitelisted"},
		{path: "/lib", link: "usr/lib"}, // symlink to a dir, replaced by a dir above
	})
	// middle depends on base and whitelists part of the result.
	middle := buildACI(t, manifestJSON(t, "example.com/middle", nil,
		[]map[string]any{{"imageName": "example.com/base", "labels": []map[string]string{{"name": "version", "value": "1"}}}},
		[]string{"/etc/os-release", "/etc/shared", "/etc/middle", "/lib/libm.so", "/bin/tool"}), []entry{
		{path: "/etc/middle", content: "middle"},
		{path: "/etc/shared", content: "from middle"},
		{path: "/lib/libm.so", content: "middle lib"},
		{path: "/bin/tool", content: "tool"},
		{path: "/bin/extra", content: "not whitelisted"},
	})
	// app depends on middle; its own files override everything below.
	app := buildACI(t, manifestJSON(t, "example.com/app", nil,
		[]map[string]any{{"imageName": "example.com/middle"}}, nil), []entry{
		{path: "/etc/os-release", content: "app"},
		{path: "/app", content: "the app"},
	})
	// Fetching an image whose dependency is missing fails cleanly.
	e.fails("example.com/base", "--insecure-options=image", "fetch", middle)
	for _, aci := range []string{base, middle, app} {
		e.ok("--insecure-options=image", "fetch", aci)
	}
	id := strings.TrimSpace(e.ok("fetch", "--pull-policy=never", "example.com/app").stdout)
	out := filepath.Join(t.TempDir(), "out")
	e.ok("image", "render", id, out)

	want := []string{
		"/app = the app",
		"/bin/tool = tool",
		"/etc/middle = middle",
		"/etc/os-release = app",
		"/etc/shared = from middle",
		"/lib/libm.so = middle lib",
	}
	got := files(t, filepath.Join(out, "rootfs"))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rendered files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st, err := os.Lstat(filepath.Join(out, "rootfs", "lib")); err != nil || !st.IsDir() {
		t.Fatalf("/lib should be a real directory (the symlink replaced, not followed): %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "manifest")); err != nil {
		t.Fatalf("render did not write the manifest: %v", err)
	}
	// The cached tree verifies; corrupting it is detected.
	key := strings.Fields(e.ok("image", "render", id).stdout)
	e.ok("image", "verify")
	if err := os.WriteFile(filepath.Join(key[1], "rootfs", "app"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.fails("corrupt", "image", "verify")

	// extract gives the image alone, without its dependencies.
	ex := filepath.Join(t.TempDir(), "ex")
	e.ok("image", "extract", "--rootfs-only", id, ex)
	if got := files(t, ex); strings.Join(got, "\n") != "/app = the app\n/etc/os-release = app" {
		t.Fatalf("extracted files: %v", got)
	}
	e.fails("exists", "image", "extract", id, ex)

	// export writes exactly the tar the ID is the hash of.
	exp := filepath.Join(t.TempDir(), "app.aci")
	e.ok("image", "export", id, exp)
	if imageKeyPlain(t, exp) != id {
		t.Fatal("exported image hashes to a different ID")
	}
	if !strings.Contains(e.ok("image", "cat-manifest", id).stdout, `"example.com/app"`) {
		t.Fatal("cat-manifest does not show the name")
	}
	// rm removes the image and its tree; gc then finds nothing to keep.
	e.ok("image", "rm", id)
	e.fails("not in the store", "image", "cat-manifest", id)
	if _, err := os.Stat(key[1]); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("tree of removed image still there: %v", err)
	}
	e.ok("image", "gc", "--grace-period=0s")
	if r := e.ok("image", "list", "--no-legend"); strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("images left after gc: %s", r.stdout)
	}
}

func imageKeyPlain(t *testing.T, tarPath string) string {
	t.Helper()
	out, err := execOutput("sha512sum", tarPath)
	if err != nil {
		t.Fatal(err)
	}
	return "sha512-" + strings.Fields(out)[0][:64]
}
