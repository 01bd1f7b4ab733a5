//go:build functional

package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"
)

// flavor is a stage1 flavor a pod runs with.
type flavor string

const (
	fly    flavor = "fly"
	nspawn flavor = "nspawn"
)

// env is one isolated nscn installation: its own data and config dirs,
// and its own HOME, so that no ~/.docker/config.json of the host's root
// lends credentials.
type env struct {
	t                        *testing.T
	dir, local, system, home string
	extraEnv                 []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	in := testutil.NewInstall(t, "home")
	home := filepath.Join(in.Root, "home")
	return &env{t: t, dir: in.Dir, local: in.Local, system: in.System, home: home, extraEnv: []string{"HOME=" + home}}
}

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	return testutil.MustEnv(t, name, "registry")
}

func nscnBin(t *testing.T) string    { return mustEnv(t, "NSCN_BIN") }
func nspawnACI(t *testing.T) string  { return mustEnv(t, "NSCN_STAGE1_NSPAWN_ACI") }
func busyboxACI(t *testing.T) string { return filepath.Join(mustEnv(t, "NSCN_IMAGES"), "busybox.aci") }

type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return "nscn " + strings.Join(r.args, " ") + "\nexit " + strconv.Itoa(r.code) + "\nstdout: " + r.stdout + "\nstderr: " + r.stderr
}

// cmd builds an nscn command with this env's global flags.
func (e *env) cmd(ctx context.Context, args ...string) *exec.Cmd {
	return testutil.Install{Dir: e.dir, Local: e.local, System: e.system}.Command(ctx, nscnBin(e.t), e.extraEnv, args...)
}

// run runs nscn and returns its output and exit code.
func (e *env) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r := result{args: args}
	r.stdout, r.stderr, r.code = testutil.Output(e.t, e.cmd(ctx, args...), nil)
	if strings.Contains(r.stderr, "goroutine ") {
		e.t.Fatalf("nscn panicked:\n%s", r)
	}
	return r
}

// ok runs nscn and fails the test unless it exits 0.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("want success:\n%s", r)
	}
	return r
}

// refused runs nscn and fails the test unless it exits non-zero with a
// stderr that mentions one of want (case-insensitive).
func (e *env) refused(args []string, want ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code == 0 {
		e.t.Fatalf("want a refusal mentioning one of %q, got success:\n%s", want, r)
	}
	low := strings.ToLower(r.stderr)
	if !slices.ContainsFunc(want, func(w string) bool { return strings.Contains(low, strings.ToLower(w)) }) {
		e.t.Fatalf("refusal does not mention any of %q:\n%s", want, r)
	}
	return r
}

// stage1Flag is the flag that picks the flavor's stage1.
func stage1Flag(t *testing.T, f flavor) string {
	t.Helper()
	if f == nspawn {
		return "--stage1-path=" + nspawnACI(t)
	}
	return "--stage1-from-dir=stage1-fly.aci"
}

// runArgs is the argv of `nscn run` of image with the fly stage1 on the
// host's network, with the insecure options (a comma list, "" for none),
// then app flags and arguments.
func runArgs(t *testing.T, insecure, image string, app ...string) []string {
	t.Helper()
	return flavorRunArgs(t, fly, insecure, image, app...)
}

func flavorRunArgs(t *testing.T, f flavor, insecure, image string, app ...string) []string {
	t.Helper()
	var args []string
	if insecure != "" {
		args = append(args, "--insecure-options="+insecure)
	}
	args = append(args, "run", "--net=host", stage1Flag(t, f), image)
	return append(args, app...)
}

// fetchArgs is the argv of `nscn fetch` of image with the insecure
// options ("" for none) and fetch flags.
func fetchArgs(insecure, image string, flags ...string) []string {
	var args []string
	if insecure != "" {
		args = append(args, "--insecure-options="+insecure)
	}
	args = append(append(append(args, "fetch"), flags...), image)
	return args
}

// lines splits output into its non-empty lines, trimmed.
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// storeFiles lists the regular files of the data directory outside pods
// (images, blobs, rendered trees, partial downloads), by path relative to
// it, with their sizes. Lock files and the index database, which a read
// may touch, are left out; the index is compared through `image list`.
func (e *env) storeFiles() map[string]int64 {
	e.t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(e.dir, p)
		if d.IsDir() && rel == "pods" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || strings.HasSuffix(rel, ".lock") || strings.HasSuffix(rel, ".db") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[rel] = fi.Size()
		return nil
	})
	if err != nil {
		e.t.Fatalf("walk the data directory: %v", err)
	}
	return out
}

// snapshot is the store's files and its image list, for asserting that a
// refused command stored nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	files := e.storeFiles()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(&b, "%s %d\n", k, files[k])
	}
	r := e.run("image", "list", "--format=json")
	b.WriteString("image list: " + r.stdout)
	return b.String()
}

// assertNothingStored fails unless the store is as before (a snapshot).
func (e *env) assertNothingStored(before string) {
	e.t.Helper()
	if after := e.snapshot(); after != before {
		e.t.Fatalf("the refused command left something in the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// filesWithDigest returns the store files (as storeFiles lists them) whose
// sha256 is one of digests ("sha256:HEX"): copies of a blob, compressed or
// not, however the store names them.
func (e *env) filesWithDigest(digests ...string) []string {
	e.t.Helper()
	var out []string
	for rel := range e.storeFiles() {
		f, err := os.Open(filepath.Join(e.dir, rel)) //nolint:gosec // G304: the test's own data directory
		if err != nil {
			e.t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		_ = f.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		if slices.Contains(digests, "sha256:"+hex.EncodeToString(h.Sum(nil))) {
			out = append(out, rel)
		}
	}
	slices.Sort(out)
	return out
}
