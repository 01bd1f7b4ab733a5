//go:build functional

package security

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/pgp/pgptest"
)

// bombSize is what the test's gzip bombs expand to: the rootfs file's
// zeros. 4 GiB of zeros gzip to about 4 MiB.
const bombSize = 4 << 30

// TestSignatureCheckedBeforeDecompression is issue 11, item 6: the
// detached signature of an image is checked over the file as fetched,
// before anything is decompressed or written to the store. A gzip bomb
// with a garbage signature, with a good signature by a key nobody
// trusts, or signed by a trusted key but named outside that key's prefix
// is refused at once, from a local file and over HTTP, and leaves the
// store as it was. A good image still fetches, and a trusted image over
// --max-image-size is refused with an error that names the flag.
func TestSignatureCheckedBeforeDecompression(t *testing.T) {
	e := newEnv(t)
	gpg := pgptest.NewGPG(t)
	trusted, pub := gpg.GenKey(t, "Trusted Signer <trusted@nosecone.dev>", pgptest.Ed25519)
	stranger, _ := gpg.GenKey(t, "Stranger <stranger@example.org>", pgptest.Ed25519)
	dir := t.TempDir()
	keyFile := pgptest.WriteFile(t, dir, "trusted.asc", pub)
	e.ok("trust", "--skip-fingerprint-review", "--prefix", "nosecone.dev", keyFile)

	// One directory per case, each with bomb.aci and bomb.aci.asc, served
	// as they are over HTTP too.
	serve := filepath.Join(dir, "serve")
	bombIn := func(sub, name string) string {
		p := filepath.Join(serve, sub, "bomb.aci")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeBomb(t, p, name, bombSize)
		return p
	}
	garbage := bombIn("garbage", "nosecone.dev/bomb")
	if err := os.WriteFile(garbage+".asc", []byte("-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n-----END PGP SIGNATURE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gpg.Sign(t, stranger, bombIn("stranger", "nosecone.dev/bomb"))
	gpg.Sign(t, trusted, bombIn("elsewhere", "example.org/bomb"))
	st, err := os.Stat(garbage)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bomb: %d bytes of gzip, %d bytes of zeros inside", st.Size(), int64(bombSize))

	srv := httptest.NewServer(http.FileServer(http.Dir(serve)))
	t.Cleanup(srv.Close)

	e.ok("image", "list") // creates the store, so that before and after compare like with like
	refusals := []struct {
		name string
		sub  string
		want string
	}{
		{name: "garbage signature", sub: "garbage", want: "signature"},
		{name: "good signature by an untrusted key", sub: "stranger", want: "not trusted"},
		{name: "trusted key outside its prefix", sub: "elsewhere", want: `"example.org/bomb"`},
	}
	for _, tc := range refusals {
		for _, via := range []string{"file", "http"} {
			t.Run(tc.name+" over "+via, func(t *testing.T) {
				ref := filepath.Join(serve, tc.sub, "bomb.aci")
				args := []string{"fetch", ref}
				if via == "http" {
					args = []string{"--insecure-options=http", "fetch", srv.URL + "/" + tc.sub + "/bomb.aci"}
				}
				before := e.storeState()
				m := e.measure(args...)
				t.Logf("refused in %v, %d bytes written, data dir grew by at most %d bytes: %s",
					m.elapsed, m.written, m.peak, strings.TrimSpace(m.stderr))
				if m.code == 0 || !strings.Contains(m.stderr, tc.want) || strings.Contains(m.stderr, "goroutine ") {
					t.Fatalf("want a refusal mentioning %q, got %s", tc.want, m.result)
				}
				if after := e.storeState(); after != before {
					t.Errorf("the refused fetch changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				// At most the compressed file (a download) and the
				// index's own pages.
				if limit := st.Size() + 1<<20; m.written > limit || m.peak > limit {
					t.Errorf("the refused fetch wrote %d bytes (data dir grew by %d), want at most %d", m.written, m.peak, limit)
				}
				if m.elapsed > time.Second {
					t.Errorf("the refusal took %v, want well under a second", m.elapsed)
				}
			})
		}
	}

	t.Run("trusted image over the size limit", func(t *testing.T) {
		big := bombIn("trusted", "nosecone.dev/bomb")
		gpg.Sign(t, trusted, big)
		before := e.storeState()
		m := e.measure("--max-image-size=16Mi", "fetch", big)
		t.Logf("refused in %v, %d bytes written: %s", m.elapsed, m.written, strings.TrimSpace(m.stderr))
		if m.code == 0 || !strings.Contains(m.stderr, "--max-image-size") {
			t.Fatalf("want a refusal naming --max-image-size, got %s", m.result)
		}
		if after := e.storeState(); after != before {
			t.Errorf("the refused fetch changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if m.written > 64<<20 {
			t.Errorf("the refused fetch wrote %d bytes, want about the 16 MiB limit", m.written)
		}
	})

	t.Run("good signed image", func(t *testing.T) {
		aci := filepath.Join(dir, "busybox.aci")
		data, err := os.ReadFile(busyboxACI(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(aci, data, 0o644); err != nil { //nolint:gosec // G703: a file the test made
			t.Fatal(err)
		}
		gpg.Sign(t, trusted, aci)
		id := strings.TrimSpace(e.ok("fetch", aci).stdout)
		if !strings.HasPrefix(id, "sha512-") {
			t.Fatalf("fetch printed %q, want an image ID", id)
		}
		list := e.ok("image", "list", "--format=json").stdout
		if !strings.Contains(list, "nosecone.dev/busybox") {
			t.Fatalf("image list after the fetch: %s", list)
		}
	})
}

// writeBomb writes a gzip ACI named name whose rootfs holds one file of
// size zero bytes (a multiple of 64 MiB). The tar headers are one gzip
// member; the zeros, end-of-archive blocks included, are copies of one
// member made by gzip from /dev/zero: concatenated members are one
// stream to gzip -d, and to nscn.
func writeBomb(t *testing.T, path, name string, size int64) {
	t.Helper()
	const chunk = 64 << 20
	manifest, err := json.Marshal(map[string]any{
		"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
		"labels": []map[string]string{{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	for _, h := range []*tar.Header{
		{Name: "manifest", Mode: 0o644, Size: int64(len(manifest)), Typeflag: tar.TypeReg},
		{Name: "rootfs", Mode: 0o755, Typeflag: tar.TypeDir},
		{Name: "rootfs/zeros", Mode: 0o644, Size: size, Typeflag: tar.TypeReg},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Name == "manifest" {
			if _, err := tw.Write(manifest); err != nil {
				t.Fatal(err)
			}
		}
	}
	// No Close: the file's content and the two end blocks are zeros, below.
	gz := func(stdin []byte, shell string) []byte {
		c := exec.Command("sh", "-c", shell) //nolint:gosec // G204: a fixed pipeline
		c.Stdin = bytes.NewReader(stdin)
		out, err := c.Output()
		if err != nil {
			t.Fatalf("%s: %v", shell, err)
		}
		return out
	}
	zeros := gz(nil, "head -c 64M /dev/zero | gzip -9 -c")
	var out bytes.Buffer
	out.Write(gz(head.Bytes(), "gzip -9 -c"))
	for range size / chunk {
		out.Write(zeros)
	}
	out.Write(gz(nil, "head -c 1024 /dev/zero | gzip -9 -c"))
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// measured is a run of nscn with what it cost.
type measured struct {
	result
	elapsed time.Duration
	written int64 // bytes the process wrote to files (getrusage ru_oublock)
	peak    int64 // the largest growth of the data dir's disk usage seen during the run
}

// measure runs nscn and records its time, the bytes it wrote and how far
// the data directory grew while it ran.
func (e *env) measure(args ...string) measured {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := e.cmd(ctx, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	base := diskUsage(e.dir)
	var (
		m    measured
		peak int64
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, diskUsage(e.dir)-base)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	start := time.Now()
	err := c.Run()
	m.elapsed = time.Since(start)
	close(stop)
	wg.Wait()
	m.peak = peak
	m.stdout, m.stderr = out.String(), errb.String()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			e.t.Fatalf("run nscn %v: %v", args, err)
		}
		m.code = ee.ExitCode()
	}
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.written = ru.Oublock * 512
	}
	return m
}

// diskUsage is what du reports for dir: the bytes allocated to its files.
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // files come and go during a fetch; what is left is counted
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// storeState lists the store's files with their sizes (not its lock files
// and database file, whose pages a read may touch) and the images nscn
// lists, so that a test can check that a command left the store as it
// was.
func (e *env) storeState() string {
	e.t.Helper()
	var b strings.Builder
	cas := filepath.Join(e.dir, "cas")
	_ = filepath.WalkDir(cas, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil //nolint:nilerr // a missing directory holds nothing
		}
		rel, _ := filepath.Rel(cas, p)
		if strings.HasSuffix(rel, ".lock") || rel == filepath.Join("db", "index.db") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil //nolint:nilerr // removed meanwhile
		}
		b.WriteString(rel + " " + strconv.FormatInt(fi.Size(), 10) + "\n")
		return nil
	})
	b.WriteString(e.ok("image", "list", "--format=json").stdout)
	return b.String()
}
