//go:build functional

package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/nosecone/nscn/internal/testutil"
)

// registryBin is Debian's build of the CNCF distribution registry.
const registryBin = "/usr/bin/docker-registry"

// The one account of a registry started with auth.
const (
	regUser     = "nscn-tester"
	regPassword = "s3cret-pa55"
)

// registryOpts says how a test registry listens.
type registryOpts struct {
	tls  bool // serve https with a server certificate of a fresh test CA
	auth bool // require htpasswd basic auth (regUser, regPassword) for every repository
}

// registry is one docker-registry process on 127.0.0.1, stopped when the
// test ends.
type registry struct {
	t    *testing.T
	opts registryOpts
	// host is 127.0.0.1:PORT, the registry part of an image reference.
	host string
	// ca is the PEM file of the CA that signed the server's certificate
	// (tls only); certDir holds it as ca.crt, the layout podman and skopeo
	// read with --cert-dir.
	ca, certDir string
	// storage is the registry's filesystem storage root.
	storage string
	log     string // the registry's stderr
	cmd     *exec.Cmd
	done    chan struct{}
}

// startRegistry starts a registry as opts says, waits until it answers
// /v2/, and stops it (and checks it is gone) when the test ends.
func startRegistry(t *testing.T, opts registryOpts) *registry {
	t.Helper()
	testutil.RequiresRoot(t)
	if _, err := os.Stat(registryBin); err != nil {
		t.Fatalf("%s: %v (scripts/install-deps.sh installs docker-registry)", registryBin, err)
	}
	dir := t.TempDir()
	r := &registry{t: t, opts: opts, storage: filepath.Join(dir, "storage"), log: filepath.Join(dir, "registry.log")}
	cfg := map[string]any{
		"version": "0.1",
		"log":     map[string]any{"level": "info", "formatter": "text"},
		"storage": map[string]any{
			"filesystem":  map[string]any{"rootdirectory": r.storage},
			"delete":      map[string]any{"enabled": true},
			"maintenance": map[string]any{"uploadpurging": map[string]any{"enabled": false}},
		},
	}
	httpCfg := map[string]any{}
	if opts.tls {
		r.certDir = filepath.Join(dir, "certs")
		cert, key := writeTestPKI(t, r.certDir)
		r.ca = filepath.Join(r.certDir, "ca.crt")
		httpCfg["tls"] = map[string]any{"certificate": cert, "key": key}
	}
	if opts.auth {
		htpasswd := filepath.Join(dir, "htpasswd")
		hash, err := bcrypt.GenerateFromPassword([]byte(regPassword), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(htpasswd, []byte(regUser+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg["auth"] = map[string]any{"htpasswd": map[string]any{"realm": "nscn-test", "path": htpasswd}}
	}
	cfg["http"] = httpCfg
	// A port picked free may be taken again before the registry binds it:
	// try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		r.host = fmt.Sprintf("127.0.0.1:%d", port)
		httpCfg["addr"] = r.host
		// JSON is YAML: the registry reads it as its config.
		b, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(conf, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if lastErr = r.start(conf); lastErr == nil {
			t.Cleanup(r.stop)
			return r
		}
	}
	t.Fatalf("start docker-registry: %v", lastErr)
	return nil
}

// start runs the registry on the config file and waits for it to answer;
// on failure the process is gone.
func (r *registry) start(conf string) error {
	logf, err := os.OpenFile(r.log, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	r.cmd = exec.Command(registryBin, "serve", conf) //nolint:gosec // G204: Debian's registry binary on the test's own config
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	// Its own process group and a death signal: nothing outlives the test
	// binary, even a killed one.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	client := r.httpClient()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return fmt.Errorf("docker-registry exited: %s", r.logText())
		default:
		}
		resp, err := client.Get(r.url("/v2/"))
		if err == nil {
			_ = resp.Body.Close()
			// 200, or 401 with auth: it is serving the API.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.kill()
	return fmt.Errorf("docker-registry did not answer %s in 15s: %s", r.url("/v2/"), r.logText())
}

// stop ends the registry: SIGTERM, then SIGKILL after 10 s. It fails the
// test if the process (or any of its group) is still there after.
func (r *registry) stop() {
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.t.Errorf("docker-registry %d ignored SIGTERM for 10s; killing it", r.cmd.Process.Pid)
		r.kill()
	}
	if err := syscall.Kill(-r.cmd.Process.Pid, 0); err == nil {
		r.t.Errorf("docker-registry's process group %d is still alive after stop", r.cmd.Process.Pid)
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	}
	if r.t.Failed() {
		r.t.Logf("docker-registry log (%s):\n%s", r.host, r.logText())
	}
}

func (r *registry) kill() {
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
}

func (r *registry) logText() string {
	b, _ := os.ReadFile(r.log)
	s := string(b)
	if len(s) > 8000 {
		s = "…" + s[len(s)-8000:]
	}
	return s
}

func (r *registry) scheme() string {
	if r.opts.tls {
		return "https"
	}
	return "http"
}

// url is the registry's URL of path.
func (r *registry) url(path string) string { return r.scheme() + "://" + r.host + path }

// ref is the docker:// reference nscn takes for repo (with :tag or
// @digest).
func (r *registry) ref(repoRef string) string { return "docker://" + r.host + "/" + repoRef }

// transport trusts the registry's CA (tls) and nothing else.
func (r *registry) transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // loopback only, whatever the environment says
	if r.opts.tls {
		pool := x509.NewCertPool()
		b, err := os.ReadFile(r.ca)
		if err != nil || !pool.AppendCertsFromPEM(b) {
			r.t.Fatalf("read test CA %s: %v", r.ca, err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tr
}

func (r *registry) httpClient() *http.Client {
	return &http.Client{Transport: r.transport(), Timeout: 30 * time.Second}
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeTestPKI writes a fresh CA (ca.crt) and a server certificate for
// 127.0.0.1 and localhost signed by it into dir, and returns the server
// certificate's and key's paths.
func writeTestPKI(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nscn registry test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "server.cert"), filepath.Join(dir, "server.key")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{
		{filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER},
		{cert, "CERTIFICATE", srvDER},
		{key, "EC PRIVATE KEY", srvKeyDER},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key
}

// runTool runs a host tool (skopeo, podman) and returns its combined
// output; err is non-nil when it exits non-zero.
func runTool(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...) //nolint:gosec // G204: the test drives fixed host tools, argv built by the test
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return string(out), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
