//go:build functional

package tests

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestFetchPrintsTheIDSha512sumGives(t *testing.T) {
	e := newEnv(t)
	aci := filepath.Join(imagesDir(t), "busybox.aci")
	want := imageKey(t, aci)
	r := e.ok("--insecure-options=image", "fetch", aci)
	if got := strings.TrimSpace(r.stdout); got != want {
		t.Fatalf("fetch printed %q, want %q", got, want)
	}
	// Fetching by ID, by a prefix of it, and by name all find it again.
	for _, ref := range []string{want, want[:20], "nosecone.dev/busybox"} {
		r := e.ok("fetch", "--pull-policy=never", ref)
		if strings.TrimSpace(r.stdout) != want {
			t.Fatalf("fetch %s printed %q", ref, r.stdout)
		}
	}
	full := strings.TrimSpace(e.ok("fetch", "--full", want).stdout)
	if len(full) != len("sha512-")+128 || !strings.HasPrefix(full, want) {
		t.Fatalf("--full printed %q", full)
	}
}

// compressed returns the image recompressed with a host tool.
func recompress(t *testing.T, aci, tool string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "image."+tool+".aci")
	cmd := "gzip -dc < \"$1\" | " + tool + " " + strings.Join(args, " ") + " > \"$2\""
	if b, err := exec.Command("sh", "-c", cmd, "sh", aci, out).CombinedOutput(); err != nil { //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		t.Fatalf("%s: %v %s", tool, err, b)
	}
	return out
}

func TestFetchAcceptsEveryCompression(t *testing.T) {
	e := newEnv(t)
	aci := filepath.Join(imagesDir(t), "hello.aci")
	want := imageKey(t, aci)
	tests := []struct {
		name string
		path string
	}{
		{name: "gzip", path: aci},
		{name: "plain", path: recompress(t, aci, "cat")},
		{name: "bzip2", path: recompress(t, aci, "bzip2", "-c")},
		{name: "xz", path: recompress(t, aci, "xz", "-c", "-T1")},
		{name: "zstd", path: recompress(t, aci, "zstd", "-q", "-c")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.ok("--insecure-options=image", "fetch", tt.path)
			if got := strings.TrimSpace(r.stdout); got != want {
				t.Fatalf("ID = %s, want %s", got, want)
			}
		})
	}
	var images []map[string]any
	if err := json.Unmarshal([]byte(e.ok("image", "list", "--format=json").stdout), &images); err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 {
		t.Fatalf("5 fetches of one image gave %d entries", len(images))
	}
}

func TestBadInputLeavesStoreUnchanged(t *testing.T) {
	e := newEnv(t)
	good := filepath.Join(imagesDir(t), "busybox.aci")
	e.ok("--insecure-options=image", "fetch", good)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil { //nolint:gosec // G703: a file the test made
			t.Fatal(err)
		}
		return p
	}
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(b)
		_ = w.Close()
		return buf.Bytes()
	}
	goodBytes, err := os.ReadFile(good) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), goodBytes[:len(goodBytes)/2]...)
	notJSON := tarOf(t, map[string]string{"manifest": "this is not json", "rootfs/": ""})
	badSchema := tarOf(t, map[string]string{"manifest": `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"Not A Valid Name!"}`, "rootfs/": ""})
	escaping := tarOf(t, map[string]string{"manifest": `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/evil"}`, "rootfs/../../evil": "x"})
	noManifest := tarOf(t, map[string]string{"rootfs/a": "x"})

	before := e.snapshot()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "corrupt gzip", args: []string{"--insecure-options=image", "fetch", write("corrupt.aci", corrupt)}, want: "import"},
		{name: "manifest not json", args: []string{"--insecure-options=image", "fetch", write("nojson.aci", gz(notJSON))}, want: "manifest"},
		{name: "manifest fails schema", args: []string{"--insecure-options=image", "fetch", write("schema.aci", gz(badSchema))}, want: "manifest"},
		{name: "no manifest", args: []string{"--insecure-options=image", "fetch", write("nomanifest.aci", gz(noManifest))}, want: "no manifest"},
		{name: "tar escaping its root", args: []string{"--insecure-options=image", "fetch", write("escape.aci", gz(escaping))}, want: "escapes"},
		{name: "garbage", args: []string{"--insecure-options=image", "fetch", write("garbage.aci", []byte("garbage!"))}, want: "image"},
		{name: "unsigned image", args: []string{"fetch", good}, want: "not signed"},
		{name: "missing file", args: []string{"--insecure-options=image", "fetch", filepath.Join(dir, "missing.aci")}, want: "does not exist"},
		{name: "wrong hash", args: []string{"fetch", "sha512-0000000000000000000000000000000000000000000000000000000000000000"}, want: "not in the store"},
		{name: "unreachable url", args: []string{"--insecure-options=image", "fetch", "https://127.0.0.1:1/x.aci"}, want: "127.0.0.1:1"},
		{name: "plain http refused", args: []string{"--insecure-options=image", "fetch", "http://127.0.0.1:1/x.aci"}, want: "--insecure-options=http"},
		{name: "larger than --max-image-size", args: []string{"--max-image-size=1Mi", "--insecure-options=image", "fetch", write("big.aci", goodBytes)}, want: "limit"},
		{name: "isolator without value", args: []string{"--insecure-options=image", "fetch", write("iso.aci", gz(tarOf(t, map[string]string{"manifest": `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/p","app":{"exec":["/x"],"user":"0","group":"0","isolators":[{"name":"resource/memory"}]}}`, "rootfs/": ""})))}, want: "no value"},
		{name: "bad pull policy", args: []string{"fetch", "--pull-policy=sometimes", good}, want: "pull policy"},
		{name: "bad insecure option", args: []string{"--insecure-options=everything", "fetch", good}, want: "insecure option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.fails(tt.want, tt.args...)
			// One line says what is wrong; log records (the
			// signature checks being off, the file used) may precede it.
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
				if !strings.HasPrefix(l, "level=") && !strings.HasPrefix(l, "time=") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("want one line on stderr, got %d:\n%s", len(lines), r.stderr)
			}
			if after := e.snapshot(); after != before {
				t.Fatalf("store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func TestParallelFetchesOfOneImage(t *testing.T) {
	e := newEnv(t)
	aci := filepath.Join(imagesDir(t), "busybox.aci")
	const n = 6
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.run("--insecure-options=image", "fetch", aci)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("fetch %d: exit %d: %s", i, r.code, r.stderr)
		}
		if r.stdout != results[0].stdout {
			t.Fatalf("fetch %d printed %q, fetch 0 %q", i, r.stdout, results[0].stdout)
		}
	}
	var images []map[string]any
	if err := json.Unmarshal([]byte(e.ok("image", "list", "--format=json").stdout), &images); err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 {
		t.Fatalf("%d parallel fetches left %d entries", n, len(images))
	}
	e.ok("image", "verify")
}

func TestFetchKilledMidwayLeavesConsistentStore(t *testing.T) {
	e := newEnv(t)
	// A big image makes the window wide: 96 MiB of incompressible-ish data.
	big := make([]byte, 96<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	aci := buildACI(t, manifestJSON(t, "example.com/big", nil, nil, nil), []entry{{path: "/big", content: string(big)}})
	for _, delay := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, 600 * time.Millisecond} {
		cmd := e.cmd(t.Context(), "--insecure-options=image", "fetch", aci)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		// Whatever the kill interrupted, nothing the index names is
		// missing or corrupt.
		e.ok("image", "verify")
	}
	e.ok("image", "gc", "--grace-period=1000h")
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "cas", "tmp")); len(ents) != 0 {
		t.Fatalf("image gc left temporary files: %v", ents)
	}
	r := e.ok("--insecure-options=image", "fetch", aci)
	if strings.TrimSpace(r.stdout) != imageKey(t, aci) {
		t.Fatalf("fetch after kills printed %q", r.stdout)
	}
	e.ok("image", "verify")
}

func TestUnchangedLocalFileIsNotImportedAgain(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	aci := filepath.Join(dir, "hello.aci")
	data, err := os.ReadFile(filepath.Join(imagesDir(t), "hello.aci"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aci, data, 0o644); err != nil { //nolint:gosec // G703: a file the test made
		t.Fatal(err)
	}
	id := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", aci).stdout)
	blob := filepath.Join(e.dir, "cas", "blob", "sha512", id[7:9], id)
	// Damage the stored blob: a re-import would repair it, reuse does not,
	// which tells the two apart.
	if err := os.WriteFile(blob, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("--insecure-options=image", "fetch", aci)
	e.fails("corrupt", "image", "verify")
	// A changed file (new modification time) is imported again.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(aci, later, later); err != nil {
		t.Fatal(err)
	}
	e.ok("--insecure-options=image", "fetch", aci)
	e.ok("image", "verify")
	// An image imported without a signature check is not reused when one
	// is asked for.
	e.fails("not signed", "fetch", aci)
}
