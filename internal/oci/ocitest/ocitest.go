// Package ocitest builds OCI images from real layer tars and serves them
// from go-containerregistry's in-process registry on 127.0.0.1, for the
// tests of the packages that fetch and run them. It is test support only.
package ocitest

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Entry is one member of a layer tar.
type Entry struct {
	Name string
	Type byte // tar.TypeReg when 0
	Body string
	Link string
	Mode int64
}

// File is a regular file.
func File(name, body string) Entry { return Entry{Name: name, Body: body, Mode: 0o644} }

// Exe is an executable file.
func Exe(name, body string) Entry { return Entry{Name: name, Body: body, Mode: 0o755} }

// Dir is a directory.
func Dir(name string) Entry { return Entry{Name: name, Type: tar.TypeDir, Mode: 0o755} }

// Symlink is a symbolic link.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Link: target, Mode: 0o777}
}

// Hardlink is a hard link.
func Hardlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeLink, Link: target, Mode: 0o644}
}

// Tar writes entries as a layer tar.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.Name, Typeflag: typ, Linkname: e.Link, Mode: e.Mode, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Layer makes a gzip layer of a tar.
func Layer(t testing.TB, tarBytes []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image builds an image of layers (bottom first) with cfg's Config.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// Registry is an in-process registry on 127.0.0.1 over plain http.
type Registry struct {
	Server *httptest.Server
	Host   string // 127.0.0.1:PORT

	mu sync.Mutex
	// BlobGets counts GET requests for blobs, by digest.
	BlobGets map[string]int
	// Tamper, when set, replaces the body of the blob with that digest.
	Tamper map[string][]byte
	// Break, when set for a digest, cuts the connection of the first GET
	// of that blob after that many bytes of its body.
	Break map[string]int64
	// OnBreak, when set, is called when Break cuts a connection (a test
	// cancels its fetch there, as a kill would stop it).
	OnBreak func()
	// BlobDelay slows every blob GET down, and MaxInFlight records how
	// many ran at once.
	BlobDelay   time.Duration
	MaxInFlight int
	inFlight    int
	// Auth, when "basic" or "bearer", makes the registry ask for
	// credentials: User and Password for basic, and for bearer a token
	// from its /token endpoint (which wants User and Password when User is
	// set, and gives anonymous tokens otherwise).
	Auth           string
	User, Password string
	// Ranges records the Range header of every blob GET, by digest.
	Ranges map[string][]string
}

// NewRegistry starts a registry over plain http, stopped when the test
// ends.
func NewRegistry(t testing.TB) *Registry { return newRegistry(t, false) }

// NewTLSRegistry starts a registry over https with a certificate of
// httptest's own CA (Server.Certificate), stopped when the test ends.
func NewTLSRegistry(t testing.TB) *Registry { return newRegistry(t, true) }

func newRegistry(t testing.TB, useTLS bool) *Registry {
	t.Helper()
	r := &Registry{BlobGets: map[string]int{}, Tamper: map[string][]byte{}, Break: map[string]int64{}, Ranges: map[string][]string{}}
	inner := registry.New(registry.Logger(nopLogger()))
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !r.authorized(w, req) {
			return
		}
		if i := strings.Index(req.URL.Path, "/blobs/sha256:"); i >= 0 && req.Method == http.MethodGet {
			d := req.URL.Path[i+len("/blobs/"):]
			r.mu.Lock()
			r.BlobGets[d]++
			r.Ranges[d] = append(r.Ranges[d], req.Header.Get("Range"))
			bad, tampered := r.Tamper[d]
			cut, broken := r.Break[d]
			delete(r.Break, d)
			r.inFlight++
			r.MaxInFlight = max(r.MaxInFlight, r.inFlight)
			delay := r.BlobDelay
			r.mu.Unlock()
			defer func() {
				r.mu.Lock()
				r.inFlight--
				r.mu.Unlock()
			}()
			time.Sleep(delay)
			if broken {
				rec := httptest.NewRecorder()
				inner.ServeHTTP(rec, req)
				body := rec.Body.Bytes()
				w.Header().Set("Content-Length", itoa(len(body)))
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(body[:cut])
				if fl, ok := w.(http.Flusher); ok {
					fl.Flush()
				}
				if r.OnBreak != nil {
					r.OnBreak()
				}
				panic(http.ErrAbortHandler)
			}
			if rg := req.Header.Get("Range"); strings.HasSuffix(rg, "-") {
				// go-containerregistry's registry takes only closed
				// ranges; real ones take bytes=N- as HTTP has it.
				head := httptest.NewRequest(http.MethodHead, req.URL.String(), nil)
				rec := httptest.NewRecorder()
				inner.ServeHTTP(rec, head)
				if size := rec.Header().Get("Content-Length"); size != "" {
					n, _ := strconv.ParseInt(size, 10, 64)
					req.Header.Set("Range", rg+strconv.FormatInt(n-1, 10))
				}
			}
			if tampered {
				w.Header().Set("Content-Length", itoa(len(bad)))
				_, _ = w.Write(bad)
				return
			}
		}
		inner.ServeHTTP(w, req)
	}))
	if useTLS {
		r.Server.StartTLS()
	} else {
		r.Server.Start()
	}
	t.Cleanup(r.Server.Close)
	r.Host = strings.TrimPrefix(strings.TrimPrefix(r.Server.URL, "http://"), "https://")
	return r
}

// pushOptions are the client options that reach the registry.
func (r *Registry) pushOptions() []remote.Option {
	if r.Server.TLS == nil {
		return nil
	}
	return []remote.Option{remote.WithTransport(r.Server.Client().Transport)}
}

const testToken = "token-for-tests"

// authorized checks the request's credentials as Auth asks, answering the
// token endpoint and challenges itself; false means it answered.
func (r *Registry) authorized(w http.ResponseWriter, req *http.Request) bool {
	r.mu.Lock()
	auth, user, pass := r.Auth, r.User, r.Password
	r.mu.Unlock()
	switch auth {
	case "basic":
		if u, p, ok := req.BasicAuth(); ok && u == user && p == pass {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return false
	case "bearer":
		if req.URL.Path == "/token" {
			if u, p, ok := req.BasicAuth(); user != "" && (!ok || u != user || p != pass) {
				w.WriteHeader(http.StatusUnauthorized)
				return false
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"token":"`+testToken+`"}`)
			return false
		}
		if req.Header.Get("Authorization") == "Bearer "+testToken {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+req.Host+`/token",service="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return false
	}
	return true
}

// RangesOf returns the Range headers of the GETs of a blob.
func (r *Registry) RangesOf(d v1.Hash) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.Ranges[d.String()]...)
}

// Gets returns how many times the blob was fetched.
func (r *Registry) Gets(d v1.Hash) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.BlobGets[d.String()]
}

// Push writes img (or an index) as repo:tag and returns its digest.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(r.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, r.pushOptions()...); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// PushIndex writes an index as repo:tag and returns its digest.
func (r *Registry) PushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(r.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, r.pushOptions()...); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
