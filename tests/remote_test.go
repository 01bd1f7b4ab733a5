//go:build functional

package tests

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// imageServer serves one image (and optionally its signature) over TLS on
// loopback, counting requests. The first full download can be cut short.
type imageServer struct {
	*httptest.Server
	mu        sync.Mutex
	data      []byte
	sig       []byte
	etag      string
	maxAge    int
	gets      int // GETs of the image
	full      int // 200 responses with a body
	notMod    int // 304 responses
	ranges    []string
	breakOnce bool
}

func newImageServer(t *testing.T, e *env, data []byte) *imageServer {
	t.Helper()
	s := &imageServer{data: data, etag: `"v1"`}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.StartTLS()
	t.Cleanup(s.Close)
	// Trust the server's certificate the way an operator would: through
	// the system's CA file variable, not by switching TLS checks off.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	e.extraEnv = append(e.extraEnv, "SSL_CERT_FILE="+ca)
	return s
}

func (s *imageServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.URL.Path {
	case "/image.aci.asc":
		if s.sig == nil {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(s.sig)
		return
	case "/image.aci":
	default:
		http.NotFound(w, r)
		return
	}
	s.gets++
	if rg := r.Header.Get("Range"); rg != "" {
		s.ranges = append(s.ranges, rg)
	}
	w.Header().Set("ETag", s.etag)
	if s.maxAge > 0 {
		w.Header().Set("Cache-Control", "max-age="+itoa(s.maxAge))
	}
	if r.Header.Get("If-None-Match") == s.etag {
		s.notMod++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if s.breakOnce && r.Header.Get("Range") == "" {
		s.breakOnce = false
		// Promise the whole image, send half, and drop the connection.
		w.Header().Set("Content-Length", itoa(len(s.data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(s.data[:len(s.data)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
			}
		}
		return
	}
	if r.Header.Get("Range") == "" {
		s.full++
	}
	http.ServeContent(w, r, "image.aci", time.Time{}, bytes.NewReader(s.data))
}

func itoa(n int) string { return strconv.Itoa(n) }

func (s *imageServer) counts() (gets, full, notMod int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets, s.full, s.notMod
}

func TestHTTPSFetchHonoursETagAndMaxAge(t *testing.T) {
	e := newEnv(t)
	aci := filepath.Join(imagesDir(t), "busybox.aci")
	data, err := os.ReadFile(aci) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	srv := newImageServer(t, e, data)
	url := srv.URL + "/image.aci"
	want := imageKey(t, aci)

	got := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", url).stdout)
	if got != want {
		t.Fatalf("fetch printed %q, want %q", got, want)
	}
	if _, full, _ := srv.counts(); full != 1 {
		t.Fatalf("first fetch: %d full downloads", full)
	}
	// update (the default): revalidate with If-None-Match, get 304.
	e.ok("--insecure-options=image", "fetch", url)
	if gets, full, notMod := srv.counts(); gets != 2 || full != 1 || notMod != 1 {
		t.Fatalf("revalidation: gets=%d full=%d 304s=%d", gets, full, notMod)
	}
	// new: the stored copy is enough, no request at all.
	e.ok("--insecure-options=image", "fetch", "--pull-policy=new", url)
	if gets, _, _ := srv.counts(); gets != 2 {
		t.Fatalf("pull-policy=new went to the network (%d gets)", gets)
	}
	// A changed image under a new ETag is downloaded again.
	srv.mu.Lock()
	srv.etag = `"v2"`
	srv.mu.Unlock()
	e.ok("--insecure-options=image", "fetch", url)
	if gets, full, _ := srv.counts(); gets != 3 || full != 2 {
		t.Fatalf("new ETag: gets=%d full=%d, want 3 and 2", gets, full)
	}
	// max-age: once the server grants an hour, update stays local too.
	srv.mu.Lock()
	srv.maxAge = 3600
	srv.mu.Unlock()
	e.ok("--insecure-options=image", "fetch", url) // 304, now with max-age
	e.ok("--insecure-options=image", "fetch", url) // fresh: no request
	if gets, _, notMod := srv.counts(); gets != 4 || notMod != 2 {
		t.Fatalf("max-age not honoured: gets=%d 304s=%d, want 4 and 2", gets, notMod)
	}
	if !strings.Contains(e.ok("image", "list", "--fields=id,source").stdout, url) {
		t.Fatal("image list does not show the source URL")
	}
}

func TestHTTPSFetchResumesBrokenDownload(t *testing.T) {
	e := newEnv(t)
	aci := filepath.Join(imagesDir(t), "hello.aci")
	data, err := os.ReadFile(aci) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	srv := newImageServer(t, e, data)
	srv.breakOnce = true
	got := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", srv.URL+"/image.aci").stdout)
	if got != imageKey(t, aci) {
		t.Fatalf("fetch printed %q", got)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.ranges) == 0 || !strings.HasPrefix(srv.ranges[0], "bytes="+itoa(len(data)/2)+"-") {
		t.Fatalf("resume did not ask for the rest: ranges %v", srv.ranges)
	}
	e.ok("image", "verify")
}

func TestHTTPSSignedFetch(t *testing.T) {
	e := newEnv(t)
	gpgImage, key := signedImage(t, newGPG(t), "busybox.aci", "ed25519")
	data, _ := os.ReadFile(gpgImage)         //nolint:gosec // G304: a file the test made
	sig, _ := os.ReadFile(gpgImage + ".asc") //nolint:gosec // G304: a file the test made
	srv := newImageServer(t, e, data)
	url := srv.URL + "/image.aci"
	// No signature on the server: refused before the image is downloaded.
	e.fails("not signed", "fetch", url)
	if gets, _, _ := srv.counts(); gets != 0 {
		t.Fatalf("image downloaded although unsigned (%d gets)", gets)
	}
	srv.mu.Lock()
	srv.sig = sig
	srv.mu.Unlock()
	e.fails("nscn trust", "fetch", url) // signed, key not trusted
	e.ok("trust", "--skip-fingerprint-review", "--prefix", "nosecone.dev/busybox", key)
	if got := strings.TrimSpace(e.ok("fetch", url).stdout); got != imageKey(t, gpgImage) {
		t.Fatalf("signed https fetch printed %q", got)
	}
}
