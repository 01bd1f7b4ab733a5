//go:build functional

package security

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPodKeepsItsImages is class 8 of Documentation/security.md: a pod
// keeps what it needs. image rm of a prepared (or exited, not yet
// collected) pod's app or stage1 image is refused, naming the pod; image
// gc keeps them; the pod still runs; once the pod is removed, the images
// can go.
func TestPodKeepsItsImages(t *testing.T) {
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			e := newEnv(t)
			uuid := strings.TrimSpace(e.ok(prepareArgs(t, f, busyboxACI(t), "--exec=/bin/true")...).stdout)
			app, stage1 := imageKeyByName(t, e, "busybox"), imageKeyByName(t, e, "stage1")

			for _, key := range []string{app, stage1, key12(app)} {
				r := e.run("image", "rm", key)
				if r.code == 0 || !strings.Contains(r.stderr, uuid) || !strings.Contains(r.stderr, "nscn rm") {
					t.Errorf("image rm %s of a prepared pod's image: want a refusal naming pod %s and nscn rm, got %s", key, uuid, r)
				}
			}
			e.ok("image", "gc", "--grace-period=0s")
			assertImages(t, e, app, stage1)

			e.ok("run-prepared", "--net=host", uuid)
			// Exited, not yet collected: still the pod's.
			for _, key := range []string{app, stage1} {
				if r := e.run("image", "rm", key); r.code == 0 || !strings.Contains(r.stderr, uuid) {
					t.Errorf("image rm %s of an exited pod's image: want a refusal naming pod %s, got %s", key, uuid, r)
				}
			}
			e.ok("image", "gc", "--grace-period=0s")
			assertImages(t, e, app, stage1)

			e.ok("rm", uuid)
			e.ok("image", "rm", app, stage1)
			assertImages(t, e)
		})
	}
}

// TestPodWithoutItsStage1TreeIsCollected is class 8 too: it deletes the
// stage1 tree of an exited pod by hand: gc cannot run the pod's stage1
// from the pod's own copy, and must neither do so nor leave the pod
// half-removed; with the stage1 image still stored, it renders the tree
// again and collects the pod.
func TestPodWithoutItsStage1TreeIsCollected(t *testing.T) {
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			e := newEnv(t)
			e.ok(runArgs(t, f, busyboxACI(t), "--exec=/bin/true")...)
			pod := e.podDir()
			key, err := os.ReadFile(filepath.Join(pod, "stage1TreeStoreID")) //nolint:gosec // G304: a file of the test's pod
			if err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(e.dir, "cas", "tree", strings.TrimSpace(string(key)))); err != nil { //nolint:gosec // G703: the tree the test's pod names, in the test's store
				t.Fatal(err)
			}
			r := e.ok("rm", filepath.Base(pod))
			if strings.TrimSpace(r.stdout) != filepath.Base(pod) {
				t.Fatalf("rm: %s", r)
			}
			if pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*")); len(pods) != 0 {
				t.Fatalf("pods left: %v", pods)
			}
		})
	}
}

// TestImageIDPrefixMustNameDigits is part of class 7 of
// Documentation/security.md: an empty or bare image ID prefix ("",
// "sha512-", "sha512") matches every image, and is refused with exit 2 and
// one line by every command that takes an image ID, before anything is
// removed.
func TestImageIDPrefixMustNameDigits(t *testing.T) {
	e := newEnv(t)
	out := t.TempDir()
	commands := []struct {
		name string
		args func(ref string) []string
		refs []string
	}{
		{name: "image rm", args: func(ref string) []string { return []string{"image", "rm", ref} }},
		{name: "image cat-manifest", args: func(ref string) []string { return []string{"image", "cat-manifest", ref} }},
		{name: "image export", args: func(ref string) []string { return []string{"image", "export", ref, filepath.Join(out, "x.aci")} }},
		{name: "image extract", args: func(ref string) []string { return []string{"image", "extract", ref, filepath.Join(out, "x")} }},
		{name: "image render", args: func(ref string) []string { return []string{"image", "render", ref} }},
		{name: "image verify", args: func(ref string) []string { return []string{"image", "verify", ref} }},
		// run and prepare also take image names: "sha512" would be one.
		{name: "run", args: func(ref string) []string { return runArgs(t, fly, ref) }, refs: []string{"", "sha512-", "SHA512-"}},
		{name: "prepare", args: func(ref string) []string { return prepareArgs(t, fly, ref) }, refs: []string{"", "sha512-"}},
	}
	for _, c := range commands {
		refs := c.refs
		if refs == nil {
			refs = []string{"", "sha512-", "sha512", "SHA512-", "s"}
		}
		for _, ref := range refs {
			t.Run(c.name+" "+ref, func(t *testing.T) {
				// Before run fetches a stage1, one image: a prefix
				// that matches every image is not even ambiguous.
				e.ok("--insecure-options=image", "fetch", busyboxACI(t))
				before := imageKeys(t, e)
				r := e.run(c.args(ref)...)
				lines := refusalLines(r.stderr)
				if r.code != 2 || len(lines) != 1 || r.stdout != "" {
					t.Errorf("want exit 2 and one line on stderr, got %s", r)
				}
				after := strings.Join(imageKeys(t, e), " ")
				for _, k := range before {
					if !strings.Contains(after, k) {
						t.Errorf("image %s was removed", k)
					}
				}
			})
		}
	}
	// Nothing was run.
	if pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*")); len(pods) != 0 {
		t.Fatalf("pods after the refusals: %v", pods)
	}
}

// storedImage is what image list --format=json says of an image.
type storedImage struct {
	Key  string `json:"key"`
	Name string `json:"name"`
}

func storedImages(t *testing.T, e *env) []storedImage {
	t.Helper()
	var ims []storedImage
	if err := json.Unmarshal([]byte(e.ok("image", "list", "--format=json").stdout), &ims); err != nil {
		t.Fatal(err)
	}
	return ims
}

func imageKeys(t *testing.T, e *env) []string {
	t.Helper()
	var keys []string
	for _, im := range storedImages(t, e) {
		keys = append(keys, im.Key)
	}
	return keys
}

// imageKeyByName is the key of the only stored image whose name contains
// part.
func imageKeyByName(t *testing.T, e *env, part string) string {
	t.Helper()
	var keys []string
	for _, im := range storedImages(t, e) {
		if strings.Contains(im.Name, part) {
			keys = append(keys, im.Key)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("images named *%s*: %v", part, keys)
	}
	return keys[0]
}

// key12 is an image ID prefix as image list prints it.
func key12(key string) string { return key[:len("sha512-")+12] }

// assertImages fails unless the store holds exactly keys.
func assertImages(t *testing.T, e *env, keys ...string) {
	t.Helper()
	have := imageKeys(t, e)
	if len(have) != len(keys) {
		t.Fatalf("images %v, want %v", have, keys)
	}
	for _, k := range keys {
		if !strings.Contains(strings.Join(have, " "), k) {
			t.Fatalf("images %v, want %v", have, keys)
		}
	}
}
