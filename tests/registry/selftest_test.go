//go:build functional

package registry

// The harness's own tests: the registries answer real clients (skopeo,
// podman) as configured, and each proxy does what the nscn tests rely on
// it to do. If these fail, the nscn tests prove nothing.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nosecone/nscn/internal/testutil"
)

// skopeoFlags are skopeo's flags to read from the registry: TLS trust or
// none, and credentials.
func (r *registry) skopeoFlags(prefix string, creds bool) []string {
	var f []string
	if r.opts.tls {
		f = append(f, "--"+prefix+"cert-dir="+r.certDir)
	} else {
		f = append(f, "--"+prefix+"tls-verify=false")
	}
	if creds {
		f = append(f, "--"+prefix+"creds="+regUser+":"+regPassword)
	}
	return f
}

// TestHarnessRegistryServesRealClients pushes an image with the library,
// then reads it with skopeo and podman over each kind of registry, and
// checks that TLS and auth are really enforced (a client without the CA,
// or without credentials, is refused).
func TestHarnessRegistryServesRealClients(t *testing.T) {
	testutil.RequiresCommand(t, "skopeo")
	testutil.RequiresCommand(t, "podman")
	tests := []struct {
		name string
		opts registryOpts
	}{
		{name: "http", opts: registryOpts{}},
		{name: "tls", opts: registryOpts{tls: true}},
		{name: "http with auth", opts: registryOpts{auth: true}},
		{name: "tls with auth", opts: registryOpts{tls: true, auth: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			reg := startRegistry(t, tt.opts)
			digest := reg.push("greet:v1", greetImage(t))
			src := "docker://" + reg.host + "/greet:v1"

			out, err := runTool(ctx, "skopeo", append(append([]string{"inspect"}, reg.skopeoFlags("", tt.opts.auth)...), src)...)
			if err != nil {
				t.Fatal(err)
			}
			var inspect struct{ Digest string }
			if err := json.Unmarshal([]byte(out), &inspect); err != nil || inspect.Digest != digest {
				t.Fatalf("skopeo inspect: digest %q (%v), want %s:\n%s", inspect.Digest, err, digest, out)
			}

			podman := podmanStore(t)
			pull := append(append([]string{}, podman...), "pull", "-q")
			if tt.opts.tls {
				pull = append(pull, "--cert-dir="+reg.certDir)
			} else {
				pull = append(pull, "--tls-verify=false")
			}
			if tt.opts.auth {
				pull = append(pull, "--creds="+regUser+":"+regPassword)
			}
			if _, err := runTool(ctx, "podman", append(pull, reg.host+"/greet:v1")...); err != nil {
				t.Fatal(err)
			}
			got, err := runTool(ctx, "podman", append(append([]string{}, podman...), "image", "inspect", "--format={{.Digest}}", reg.host+"/greet:v1")...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(got) != digest {
				t.Fatalf("podman pulled digest %q, want %s", strings.TrimSpace(got), digest)
			}

			// The negative halves: the registry refuses what it should.
			if tt.opts.tls {
				out, err := runTool(ctx, "skopeo", "inspect", src)
				if err == nil || !strings.Contains(out, "x509") {
					t.Fatalf("skopeo without the test CA: want an x509 error, got %v:\n%s", err, out)
				}
			}
			if tt.opts.auth {
				out, err := runTool(ctx, "skopeo", append(append([]string{"inspect"}, reg.skopeoFlags("", false)...), src)...)
				if err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
					t.Fatalf("skopeo without credentials: want unauthorized, got %v:\n%s", err, out)
				}
			}
		})
	}
}

// TestHarnessRegistryStops checks that stopping a registry leaves no
// process and frees its port.
func TestHarnessRegistryStops(t *testing.T) {
	var reg *registry
	t.Run("start", func(t *testing.T) { reg = startRegistry(t, registryOpts{}) })
	if reg == nil {
		t.Fatal("no registry started")
	}
	// The subtest's cleanup stopped it.
	select {
	case <-reg.r.Done():
	default:
		t.Fatal("registry process still running after its test ended")
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(reg.url("/v2/"))
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("%s still answers after stop", reg.host)
	}
}

// podmanStore returns podman's global flags for a store of its own,
// reset (its mounts and files removed) when the test ends.
func podmanStore(t *testing.T) []string {
	t.Helper()
	// podman refuses a run root longer than 50 characters: t.TempDir's
	// names are longer.
	run, err := os.MkdirTemp("", "nscn-podman-") //nolint:usetesting // podman wants a run root under 50 characters, which t.TempDir's names are not
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--root", filepath.Join(t.TempDir(), "storage"), "--runroot", run, "--cgroup-manager=cgroupfs", "--events-backend=none"}
	t.Cleanup(func() {
		if out, err := runTool(context.Background(), "podman", append(append([]string{}, flags...), "system", "reset", "--force")...); err != nil {
			t.Errorf("podman system reset: %v\n%s", err, out)
		}
		_ = os.RemoveAll(run)
	})
	return flags
}

// randomBytes is n bytes from crypto/rand: incompressible.
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// getBlob fetches a blob of the payload repository from host (the
// registry or a proxy), with a Range header unless rng is "", and returns
// the response and its body.
func getBlob(ctx context.Context, t *testing.T, host, digest, rng string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/payload/blobs/"+digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestHarnessProxy proves each proxy behaviour the nscn tests rely on,
// with skopeo and with raw HTTP.
func TestHarnessProxy(t *testing.T) {
	testutil.RequiresCommand(t, "skopeo")
	reg := startRegistry(t, registryOpts{})
	payload := randomBytes(t, 1<<20)
	layer := layerOf(t, file("payload", string(payload)))
	img := imageOf(t, v1.Config{}, busyboxLayer(t), layer)
	reg.push("payload:v1", img)
	ld, lsize := digestOf(t, layer), sizeOf(t, layer)
	bd := digestOf(t, busyboxLayer(t))

	t.Run("counts every blob GET and its bytes", func(t *testing.T) {
		p := startProxy(t, reg)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := runTool(ctx, "skopeo", "copy", "--insecure-policy", "--src-tls-verify=false", p.ref("payload:v1"), "oci:"+t.TempDir()+":x"); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{ld, bd} {
			if n := len(p.blobGets(d)); n != 1 {
				t.Errorf("blob %s: %d GETs, want 1\n%s", d, n, p.dump())
			}
		}
		if got := p.blobBytes(ld); got != lsize {
			t.Errorf("layer bytes served %d, want %d", got, lsize)
		}
		if p.manifestGets("v1") == 0 {
			t.Errorf("no manifest GET logged:\n%s", p.dump())
		}
	})

	t.Run("a tampered blob has one byte changed and fails skopeo's digest check", func(t *testing.T) {
		p := startProxy(t, reg)
		off := lsize / 2
		p.tamperBlob(ld, off)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, good, err := getBlob(ctx, t, reg.host, ld, "")
		if err != nil {
			t.Fatal(err)
		}
		_, bad, err := getBlob(ctx, t, p.host, ld, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(bad) != len(good) || sha256Hex(good) != ld {
			t.Fatalf("sizes %d and %d, direct digest %s want %s", len(bad), len(good), sha256Hex(good), ld)
		}
		var diffs []int
		for i := range good {
			if good[i] != bad[i] {
				diffs = append(diffs, i)
			}
		}
		if len(diffs) != 1 || int64(diffs[0]) != off {
			t.Fatalf("tampered bytes at %v, want exactly [%d]", diffs, off)
		}
		// A range starting after the flipped byte is untouched; one
		// covering it is flipped at the right place.
		_, tail, err := getBlob(ctx, t, p.host, ld, fmt.Sprintf("bytes=%d-", off-10))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tail[:10], good[off-10:off]) || tail[10] == good[off] || !bytes.Equal(tail[11:], good[off+1:]) {
			t.Fatal("range through the tampering proxy not flipped at the blob offset")
		}
		out, err := runTool(ctx, "skopeo", "copy", "--insecure-policy", "--src-tls-verify=false", p.ref("payload:v1"), "oci:"+t.TempDir()+":x")
		if err == nil || !strings.Contains(strings.ToLower(out), "digest did not match") {
			t.Fatalf("skopeo through the tampering proxy: want a digest error, got %v:\n%s", err, out)
		}
	})

	t.Run("a stalled GET sends n bytes then nothing, and a Range GET resumes", func(t *testing.T) {
		p := startProxy(t, reg)
		const n = 300_000
		p.stallBlob(ld, n)
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.host+"/v2/payload/blobs/"+ld, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, head); err != nil {
			t.Fatalf("read the first %d bytes: %v", n, err)
		}
		select {
		case d := <-p.stalled:
			if d != ld {
				t.Fatalf("stalled %s, want %s", d, ld)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no stall signalled")
		}
		more := make(chan error, 1)
		go func() { _, err := resp.Body.Read(make([]byte, 1)); more <- err }()
		select {
		case err := <-more:
			t.Fatalf("a read past the stall returned (%v)", err)
		case <-time.After(time.Second):
		}
		cancel() // the client goes away, as a killed nscn would
		select {
		case err := <-more:
			if err == nil {
				t.Fatal("a read of the stalled body returned no error after the client hung up")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a read of the stalled body still blocks 10s after the client hung up")
		}
		_ = resp.Body.Close()
		// The handler logs once the stalled response ends.
		deadline := time.Now().Add(10 * time.Second)
		for len(p.blobGets(ld)) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		gets := p.blobGets(ld)
		if len(gets) != 1 || gets[0].bytes != n {
			t.Fatalf("log after the stall: %+v, want one GET of %d bytes\n%s", gets, n, p.dump())
		}

		rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
		defer rcancel()
		rresp, rest, err := getBlob(rctx, t, p.host, ld, fmt.Sprintf("bytes=%d-", n))
		if err != nil {
			t.Fatal(err)
		}
		if rresp.StatusCode != http.StatusPartialContent {
			t.Fatalf("Range GET: status %d", rresp.StatusCode)
		}
		if got := sha256Hex(append(head, rest...)); got != ld {
			t.Fatalf("resumed blob digest %s, want %s", got, ld)
		}
		gets = p.blobGets(ld)
		if len(gets) != 2 || gets[1].rangeHdr != fmt.Sprintf("bytes=%d-", n) || gets[1].bytes != lsize-n {
			t.Fatalf("log after the resume: %+v, want a second GET with Range bytes=%d- of %d bytes", gets, n, lsize-n)
		}
	})
}

// writeFile writes a test file, failing the test on error.
func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
