//go:build functional && fly

package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/nosecone/nscn/internal/testutil/e2e"
)

// TestRunOfStoredImagesNeedsNoFetchSide: nscn links no fetcher; it runs a
// pod of stored images alone, and hands what needs the fetch side to
// nscn-fetch. A copy of nscn with no nscn-fetch beside it (nor in the
// compiled-in directory) runs the stored busybox image, and refuses a
// fetch, and a run of an image not stored yet, with an error that names
// the missing program, leaving no pod behind; it returns a rendered tree,
// and refuses a render that hashes with BLAKE3 and image verify.
func TestRunOfStoredImagesNeedsNoFetchSide(t *testing.T) {
	e := newEnv(t)
	lone := filepath.Join(t.TempDir(), "nscn")
	data, err := os.ReadFile(nscnBin(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lone, data, 0o755); err != nil { //nolint:gosec // G306: a program the test runs
		t.Fatal(err)
	}
	// The helper in the compiled-in directory would hide a missing one
	// beside lone.
	if _, err := os.Stat("/usr/local/lib/nscn/nscn-fetch"); err == nil {
		t.Skip("nscn-fetch is installed in /usr/local/lib/nscn: nscn would find it")
	}
	// The whole installation (nscn and nscn-fetch) imports the stage1 of
	// the system config and busybox.
	id := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", busybox(t)).stdout)
	e.ok("--insecure-options=image", "run", busybox(t), "--exec=/bin/true")
	pods := func() int { return len(strings.Split(strings.TrimSpace(e.ok("list", "--no-legend").stdout), "\n")) }
	before := pods()

	run := func(args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var r result
		cmd := e2e.Install{Dir: e.dir, Local: e.local, System: e.system}.Command(ctx, lone, nil, args...)
		r.stdout, r.stderr, r.code = e2e.Output(t, cmd, nil)
		return r
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "stored image by ID", args: []string{"--insecure-options=image", "run", id, "--exec=/bin/true"}},
		{name: "stored image by file", args: []string{"--insecure-options=image", "run", busybox(t), "--exec=/bin/true"}},
		{name: "stored image by name", args: []string{"--insecure-options=image", "run", "nosecone.dev/busybox", "--exec=/bin/true"}},
		{name: "fetch", args: []string{"--insecure-options=image", "fetch", busybox(t)}, wantCode: 254, wantErr: "need nscn-fetch, found neither at " + filepath.Join(filepath.Dir(lone), "nscn-fetch")},
		{name: "image not stored", args: []string{"--insecure-options=image", "run", filepath.Join(imagesDir(t), "hello.aci")}, wantCode: 254, wantErr: "need nscn-fetch"},
		{name: "trust", args: []string{"trust", "--list"}, wantCode: 254, wantErr: "need nscn-fetch"},
	}
	ran := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(tc.args...)
			if r.code != tc.wantCode || !strings.Contains(r.stderr, tc.wantErr) {
				t.Fatalf("lone nscn %s: exit %d, want %d with %q\nstderr: %s", strings.Join(tc.args, " "), r.code, tc.wantCode, tc.wantErr, r.stderr)
			}
			if tc.wantCode == 0 {
				ran++
			}
		})
	}
	if got := pods(); got != before+ran {
		t.Errorf("%d pods after the lone runs, want %d: a refused run left one behind", got, before+ran)
	}

	// A stored image whose tree is not rendered yet: where new trees are
	// hashed with BLAKE3 (x86-64 with AVX2, store/tree's contentAlgo),
	// which nscn does not link, the render is nscn-fetch's; elsewhere nscn
	// renders it. image verify is always nscn-fetch's.
	sdapp := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", filepath.Join(imagesDir(t), "sdapp.aci")).stdout)
	t.Run("render of a stored image", func(t *testing.T) {
		r := run("image", "render", sdapp)
		if cpu.X86.HasAVX2 {
			if r.code != 254 || !strings.Contains(r.stderr, "need nscn-fetch") {
				t.Fatalf("lone nscn image render: exit %d, want 254 naming nscn-fetch\nstderr: %s", r.code, r.stderr)
			}
		} else if r.code != 0 {
			t.Fatalf("lone nscn image render (SHA-256 host): exit %d\nstderr: %s", r.code, r.stderr)
		}
		if r := run("image", "verify", sdapp); r.code != 254 || !strings.Contains(r.stderr, "need nscn-fetch") {
			t.Fatalf("lone nscn image verify: exit %d, want 254 naming nscn-fetch\nstderr: %s", r.code, r.stderr)
		}
		// The whole installation hands both over and succeeds.
		e.ok("image", "render", sdapp)
		e.ok("image", "verify", sdapp)
		if r := run("image", "render", sdapp); r.code != 0 {
			t.Fatalf("lone nscn image render of a rendered tree: exit %d\nstderr: %s", r.code, r.stderr)
		}
	})
}
