//go:build functional

package tests

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/pgp"
	"github.com/nosecone/nscn/internal/pgp/pgptest"
	"github.com/nosecone/nscn/internal/testutil/testca"
)

// discoServer is an appc discovery site for names under "localhost", which
// resolves to 127.0.0.1 without DNS: discovery pages, images, signatures
// and keys, over TLS on 127.0.0.1:443 with a certificate from a CA the test
// makes (nscn trusts it through SSL_CERT_FILE, as an operator would), or
// over plain http on 127.0.0.1:80. Image names cannot carry a port, so the
// standard ports it is; the tests of this file do not run in parallel.
type discoServer struct {
	mu    sync.Mutex
	files map[string][]byte // URL path -> content
	pages map[string]string // name (host + path) -> discovery page
	gets  []string          // URL paths of the GETs of files
	// auth, when set, is the Authorization every request for a page or
	// file whose name or path has "/private" must carry.
	auth string
}

// newDiscoServer starts the site over https (tlsOn) or plain http.
func newDiscoServer(t *testing.T, e *env, tlsOn bool) *discoServer {
	t.Helper()
	s := &discoServer{files: map[string][]byte{}, pages: map[string]string{}}
	addr := "127.0.0.1:80"
	if tlsOn {
		addr = "127.0.0.1:443"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("discovery tests need %s on loopback (image names cannot name a port): %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	if tlsOn {
		cert, ca := testCA(t)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		l = tls.NewListener(l, srv.TLSConfig)
		e.extraEnv = append(e.extraEnv, "SSL_CERT_FILE="+ca)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// testCA makes a CA and a certificate it signs for localhost and
// 127.0.0.1; it returns the certificate and the path of the CA's PEM.
func testCA(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	pki, err := testca.New("nscn discovery test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, _, _, err := pki.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return cert, ca
}

func (s *discoServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.auth != "" && strings.Contains(r.URL.Path, "/private") && r.Header.Get("Authorization") != s.auth {
		w.Header().Set("WWW-Authenticate", `Basic realm="nscn test"`)
		http.Error(w, "who are you?", http.StatusUnauthorized)
		return
	}
	if r.URL.Query().Get("ac-discovery") == "1" {
		page, ok := s.pages[strings.TrimSuffix(r.Host+r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(page))
		return
	}
	s.gets = append(s.gets, r.URL.Path)
	data, ok := s.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(data)
}

func (s *discoServer) put(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = data
}

func (s *discoServer) page(name, html string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pages[name] = html
}

// imageGets counts the GETs of images (not signatures or keys).
func (s *discoServer) imageGets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, g := range s.gets {
		if strings.HasSuffix(g, ".aci") {
			n++
		}
	}
	return n
}

// onTerminal runs nscn with a terminal for stdin, stdout and stderr (a
// pseudo-terminal that util-linux's script makes), typing input. It returns
// what the terminal showed and the exit error.
func (e *env) onTerminal(t *testing.T, input string, args ...string) (string, error) {
	t.Helper()
	all := append([]string{nscnBin(t), "--dir", e.dir, "--local-config", e.local, "--system-config", e.system}, args...)
	quoted := make([]string, len(all))
	for i, a := range all {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "script", "-q", "-e", "-c", strings.Join(quoted, " "), "/dev/null") //nolint:gosec // G204: the test's own binary and arguments
	c.Env = append(append(os.Environ(), "LC_ALL=C"), e.extraEnv...)
	c.Stdin = strings.NewReader(input)
	out, err := c.CombinedOutput()
	return string(out), err
}

// hostArch is the host's arch as appc spells it in templates.
func hostArch() string {
	if runtime.GOARCH == "arm64" {
		return "aarch64"
	}
	return runtime.GOARCH
}

// publish builds an image named name with labels and dependencies, signs
// it with fpr (unless fpr is empty) and serves it where the site's
// template puts name at each of versions. It returns the image file.
func (s *discoServer) publish(t *testing.T, gpg *pgptest.GPG, fpr, name string, labels map[string]string, deps []map[string]any, versions ...string) string {
	t.Helper()
	return s.publishManifest(t, gpg, fpr, name, manifestJSON(t, name, labels, deps, nil), versions...)
}

// publishManifest is publish with the manifest given.
func (s *discoServer) publishManifest(t *testing.T, gpg *pgptest.GPG, fpr, name string, manifest []byte, versions ...string) string {
	t.Helper()
	aci := buildACI(t, manifest, []entry{{path: "/name", content: name}})
	data, err := os.ReadFile(aci) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	var sig []byte
	if fpr != "" {
		if sig, err = os.ReadFile(gpg.Sign(t, fpr, aci)); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range versions {
		p := "/aci/" + name + "-" + v + "-linux-" + hostArch() + ".aci"
		s.put(p, data)
		if sig != nil {
			s.put(p+".asc", sig)
		}
	}
	return aci
}

// sitePage is the discovery page of the whole site, served at "localhost":
// image names below it are found by walking up.
func sitePage(scheme string) string {
	return `<!DOCTYPE html><html><head>
<meta name="go-import" content="localhost git https://localhost/repo">
<meta name="ac-discovery" content="localhost ` + scheme + `://localhost/aci/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery-pubkeys" content="localhost ` + scheme + `://localhost/pubkeys.asc">
</head><body>nscn test site</body></html>`
}

// TestDiscoveryFetch covers image and key discovery over TLS end to end:
// trust by discovery, fetch by name verified, a label mismatch refused
// with nothing stored, dependencies fetched by discovery (keys trusted
// with --trust-keys-from-https), a dependency cycle and a wrong pin
// refused.
func TestDiscoveryFetch(t *testing.T) {
	e := newEnv(t)
	gpg := newGPG(t)
	fpr, pub := gpg.GenKey(t, "Disco Publisher <disco@example.com>", pgptest.Ed25519)
	srv := newDiscoServer(t, e, true)
	srv.page("localhost", sitePage("https"))
	srv.put("/pubkeys.asc", pub)
	const app = "localhost/disco/app"
	appACI := srv.publish(t, gpg, fpr, app, map[string]string{"version": "1.0.0"}, nil, "1.0.0", "latest")

	// No key trusted: refused before any image is downloaded, saying how.
	before := e.snapshot()
	r := e.fails(`nscn trust --prefix `+app, "fetch", app)
	t.Logf("untrusted: exit %d: %s", r.code, r.stderr)
	if !strings.Contains(r.stderr, "--trust-keys-from-https") || srv.imageGets() != 0 || e.snapshot() != before {
		t.Fatalf("untrusted fetch: %d image GETs, store changed: %v\n%s", srv.imageGets(), e.snapshot() != before, r.stderr)
	}

	// trust --prefix discovers the key; without a terminal and without
	// --trust-keys-from-https it shows the key and refuses.
	pretty := pgp.FormatFingerprint(fpr)
	r = e.fails("--trust-keys-from-https", "trust", "--prefix", app)
	t.Logf("trust without a terminal: exit %d: %s", r.code, r.stderr)
	if !strings.Contains(r.stderr, pretty) || !strings.Contains(r.stderr, "Disco Publisher") || !strings.Contains(r.stderr, app) {
		t.Fatalf("refused discovered key not shown (fingerprint, user ID, prefix):\n%s", r.stderr)
	}
	if out := e.ok("trust", "--list", "--format=json").stdout; strings.TrimSpace(out) != "[]" {
		t.Fatalf("refused trust stored a key: %s", out)
	}
	// On a terminal, the question is asked: "no" stores nothing, "yes"
	// trusts the key.
	out, err := e.onTerminal(t, "no\n", "trust", "--prefix", app)
	if err == nil || !strings.Contains(out, pretty) || !strings.Contains(out, "Are you sure") {
		t.Fatalf("answered no on a terminal: %v\n%s", err, out)
	}
	if out := e.ok("trust", "--list", "--format=json").stdout; strings.TrimSpace(out) != "[]" {
		t.Fatalf("a key answered no was stored: %s", out)
	}
	if out, err := e.onTerminal(t, "yes\n", "trust", "--prefix", "localhost/disco/tty"); err != nil || !strings.Contains(out, pretty) {
		t.Fatalf("answered yes on a terminal: %v\n%s", err, out)
	}
	if out := e.ok("trust", "--list").stdout; !strings.Contains(out, "localhost/disco/tty") {
		t.Fatalf("a key answered yes was not stored:\n%s", out)
	}
	e.ok("trust", "--remove", fpr, "--prefix", "localhost/disco/tty")

	r = e.ok("--trust-keys-from-https", "trust", "--prefix", app)
	if !strings.Contains(r.stderr, pretty) || !strings.Contains(r.stderr, "Disco Publisher") {
		t.Fatalf("trusted discovered key not shown:\n%s", r.stderr)
	}
	var keys []struct{ Prefix, Fingerprint string }
	if err := json.Unmarshal([]byte(e.ok("trust", "--list", "--format=json").stdout), &keys); err != nil || len(keys) != 1 ||
		keys[0].Prefix != app || !strings.EqualFold(strings.ReplaceAll(keys[0].Fingerprint, " ", ""), fpr) {
		t.Fatalf("trusted keys %+v (%v), want %s for %s", keys, err, fpr, app)
	}

	if out := e.ok("config").stdout; !strings.Contains(out, `"nscnKind": "trustedKey"`) || !strings.Contains(out, `"prefix": "`+app+`"`) {
		t.Fatalf("config does not list the trusted key:\n%s", out)
	}

	// Fetch by name, with and without a version: verified, the image
	// served, no insecure option.
	for _, ref := range []string{app + ":1.0.0", app} {
		r = e.ok("fetch", ref)
		if got := strings.TrimSpace(r.stdout); got != imageKey(t, appACI) {
			t.Fatalf("fetch %s printed %q, want %s", ref, got, imageKey(t, appACI))
		}
		if !strings.Contains(r.stderr, "signature verified") {
			t.Fatalf("fetch %s: no signature verified:\n%s", ref, r.stderr)
		}
	}
	if out := e.ok("image", "list", "--format=json").stdout; !strings.Contains(out, fpr) {
		t.Fatalf("image not recorded as signed by %s: %s", fpr, out)
	}

	// A label mismatch: version 2.0.0 asked, the server's file there is
	// 1.0.0 (signed, trusted): refused before it is stored. A name
	// mismatch likewise.
	srv.publish(t, gpg, fpr, app, map[string]string{"version": "1.0.0"}, nil, "2.0.0")
	imposter := srv.publish(t, gpg, fpr, "localhost/disco/app/imposter", map[string]string{"version": "3.0.0"}, nil)
	data, _ := os.ReadFile(imposter)         //nolint:gosec // G304: a file the test made
	sig, _ := os.ReadFile(imposter + ".asc") //nolint:gosec // G304: a file the test made
	srv.put("/aci/"+app+"-3.0.0-linux-"+hostArch()+".aci", data)
	srv.put("/aci/"+app+"-3.0.0-linux-"+hostArch()+".aci.asc", sig)
	before = e.snapshot()
	for _, c := range []struct{ want, ref string }{
		{want: `version="1.0.0", not "2.0.0"`, ref: app + ":2.0.0"},
		{want: "is named localhost/disco/app/imposter", ref: app + ":3.0.0"},
		{want: `channel=""`, ref: app + ",channel=beta"},
	} {
		r = e.fails(c.want, "fetch", c.ref)
		t.Logf("fetch %s: exit %d: %s", c.ref, r.code, r.stderr)
	}
	if after := e.snapshot(); after != before {
		t.Fatalf("refused images changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// A dependency by name, discovered too; keys of both names trusted
	// during the fetch with --trust-keys-from-https.
	base := srv.publish(t, gpg, fpr, "localhost/disco/base", nil, nil, "latest")
	dependent := srv.publish(t, gpg, fpr, "localhost/disco/withdep", nil, []map[string]any{{"imageName": "localhost/disco/base"}}, "latest")
	e.fails("nscn trust --prefix localhost/disco/withdep", "fetch", "localhost/disco/withdep")
	r = e.ok("--trust-keys-from-https", "fetch", "localhost/disco/withdep")
	t.Logf("withdep: %s", r.stderr)
	if got := strings.TrimSpace(r.stdout); got != imageKey(t, dependent) {
		t.Fatalf("fetch withdep printed %q", got)
	}
	if got := strings.TrimSpace(e.ok("fetch", "--pull-policy=never", "localhost/disco/base").stdout); got != imageKey(t, base) {
		t.Fatalf("dependency not stored: %q", got)
	}
	out = e.ok("trust", "--list").stdout
	for _, p := range []string{"localhost/disco/withdep", "localhost/disco/base"} {
		if !strings.Contains(out, p) {
			t.Fatalf("key not trusted for %s during the fetch:\n%s", p, out)
		}
	}
	rendered := filepath.Join(t.TempDir(), "render")
	e.ok("image", "render", imageKey(t, dependent), rendered)
	if b, err := os.ReadFile(filepath.Join(rendered, "rootfs", "name")); err != nil || string(b) != "localhost/disco/withdep" { //nolint:gosec // G304: a file the test made
		t.Fatalf("rendered image: %q, %v", b, err)
	}

	// run by name: the app discovered, its dependency (busybox, fetched
	// from its file) taken from the store.
	e.ok("--insecure-options=image", "fetch", busybox(t))
	srv.publishManifest(t, gpg, fpr, "localhost/disco/runme", []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11",`+
		`"name":"localhost/disco/runme","labels":[{"name":"os","value":"linux"},{"name":"arch","value":"`+hostArch()+`"}],`+
		`"app":{"exec":["/bin/sh","-c","cat /name"],"user":"0","group":"0"},`+
		`"dependencies":[{"imageName":"nosecone.dev/busybox"}]}`), "latest")
	r = e.ok("--trust-keys-from-https", "run", "localhost/disco/runme")
	if !strings.Contains(r.stdout, "localhost/disco/runme") {
		t.Fatalf("run by name: the app did not print its file:\n%s\n%s", r.stdout, r.stderr)
	}

	// A cycle: a → b → a, both only on the server. Refused naming it,
	// nothing stored.
	srv.publish(t, gpg, fpr, "localhost/disco/cyc-a", nil, []map[string]any{{"imageName": "localhost/disco/cyc-b"}}, "latest")
	srv.publish(t, gpg, fpr, "localhost/disco/cyc-b", nil, []map[string]any{{"imageName": "localhost/disco/cyc-a"}}, "latest")
	before = e.snapshot()
	r = e.fails("dependency cycle: localhost/disco/cyc-a → localhost/disco/cyc-b → localhost/disco/cyc-a",
		"--trust-keys-from-https", "fetch", "localhost/disco/cyc-a")
	t.Logf("cycle: exit %d: %s", r.code, r.stderr)
	if after := e.snapshot(); after != before {
		t.Fatalf("refused cycle changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// A dependency pinned to an image ID that discovery does not give.
	wrong := "sha512-" + strings.Repeat("0", 64)
	srv.publish(t, gpg, fpr, "localhost/disco/pinned", nil, []map[string]any{{"imageName": "localhost/disco/pinbase", "imageID": wrong}}, "latest")
	srv.publish(t, gpg, fpr, "localhost/disco/pinbase", nil, nil, "latest")
	r = e.fails("is pinned to image "+wrong, "--trust-keys-from-https", "fetch", "localhost/disco/pinned")
	t.Logf("wrong pin: exit %d: %s", r.code, r.stderr)
	e.fails("in the store", "fetch", "--pull-policy=never", "localhost/disco/pinned")
}

// TestDiscoveryPlainHTTP: a site that serves discovery only over plain
// http is refused unless --insecure-options=http.
func TestDiscoveryPlainHTTP(t *testing.T) {
	e := newEnv(t)
	srv := newDiscoServer(t, e, false)
	srv.page("localhost", sitePage("http"))
	const app = "localhost/plain/app"
	aci := srv.publish(t, nil, "", app, nil, nil, "latest")

	before := e.snapshot()
	r := e.fails("--insecure-options=http", "--insecure-options=image", "fetch", app)
	t.Logf("plain http refused: exit %d: %s", r.code, r.stderr)
	if srv.imageGets() != 0 || e.snapshot() != before {
		t.Fatalf("plain http discovery used without the option:\n%s", r.stderr)
	}
	r = e.ok("--insecure-options=image,http", "fetch", app)
	if got := strings.TrimSpace(r.stdout); got != imageKey(t, aci) {
		t.Fatalf("fetch over http printed %q", got)
	}
}

// TestDiscoveryAuth: a site whose discovery page and images need
// credentials gets those of auth.d (basic, over https), and refuses
// without them.
func TestDiscoveryAuth(t *testing.T) {
	e := newEnv(t)
	srv := newDiscoServer(t, e, true)
	srv.auth = "Basic YWxpY2U6aHVudGVyMg==" // alice:hunter2
	srv.page("localhost", sitePage("https"))
	srv.page("localhost/private", `<meta name="ac-discovery" content="localhost/private https://localhost/private/{name}.{ext}">`)
	const app = "localhost/private/app"
	aci := buildACI(t, manifestJSON(t, app, nil, nil, nil), []entry{{path: "/name", content: app}})
	data, err := os.ReadFile(aci) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	srv.put("/private/"+app+".aci", data)

	r := e.fails("localhost", "--insecure-options=image", "fetch", app)
	if !strings.Contains(r.stderr, "401") {
		t.Fatalf("fetch without credentials: want the 401 named\n%s", r.stderr)
	}
	dir := filepath.Join(e.local, "auth.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entry := `{"rktKind":"auth","rktVersion":"v1","domains":["localhost"],"type":"basic","credentials":{"user":"alice","password":"hunter2"}}`
	if err := os.WriteFile(filepath.Join(dir, "10-localhost.json"), []byte(entry), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.ok("--insecure-options=image", "fetch", app)
	if got := strings.TrimSpace(r.stdout); got != imageKey(t, aci) {
		t.Fatalf("fetch with credentials printed %q", got)
	}
	out := e.ok("config").stdout
	if strings.Contains(out, "hunter2") || !strings.Contains(out, `"user": "alice"`) {
		t.Fatalf("config shows the password or not the user:\n%s", out)
	}
}
