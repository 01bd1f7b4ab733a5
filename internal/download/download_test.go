package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
)

const size = 1 << 20

// testLog sends the package's debug records to the test's output.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checkFile asserts that path holds exactly want.
func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatalf("read result: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("downloaded %d bytes with the wrong sha256, want %d bytes", len(got), len(want))
	}
}

func seed(t *testing.T, path string, data []byte, m *meta) {
	t.Helper()
	if data != nil {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if m != nil {
		if err := saveMeta(path+metaSuffix, *m); err != nil {
			t.Fatal(err)
		}
	}
}

func ranges(reqs []http.Header) []string {
	var r []string
	for _, h := range reqs {
		if v := h.Get("Range"); v != "" {
			r = append(r, v)
		}
	}
	return r
}

func TestFetch(t *testing.T) {
	content := testContent(size)
	garbage := bytes.Repeat([]byte{0xee}, size/3)
	modTime := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	third := int64(size / 3)
	etagMeta := &meta{ETag: `"v1"`, Validator: `"v1"`, Size: size}

	tests := []struct {
		name     string
		srv      *server
		seed     []byte // partial file before the Fetch
		seedMeta *meta  // its meta; URL "" is filled with the server's
		opts     Options

		wantNotModified bool
		wantMaxAge      time.Duration
		wantRanges      []string // Range headers the server saw, in order; nil with anyRange: at least one
		anyRange        bool
		wantSent        int64  // body bytes the server sent; -1: at least the object
		wantProgress    string // substring of the progress output
	}{
		{
			name:         "full download",
			srv:          &server{etag: `"v1"`},
			opts:         Options{Progress: &bytes.Buffer{}, Label: "busybox.aci"},
			wantSent:     size,
			wantProgress: "busybox.aci: 1.0 MiB / 1.0 MiB (100%)",
		},
		{
			name:       "max-age",
			srv:        &server{cacheControl: "public, max-age=300"},
			wantMaxAge: 300 * time.Second,
			wantSent:   size,
		},
		{
			name:       "max-age less age",
			srv:        &server{cacheControl: "max-age=300", age: "100"},
			wantMaxAge: 200 * time.Second,
			wantSent:   size,
		},
		{
			name:     "no-cache",
			srv:      &server{cacheControl: "max-age=300, no-cache"},
			wantSent: size,
		},
		{
			name:     "no-store",
			srv:      &server{cacheControl: "no-store"},
			wantSent: size,
		},
		{
			name:            "not modified",
			srv:             &server{etag: `"v1"`, cacheControl: "max-age=60"},
			opts:            Options{ETag: `"v1"`},
			wantNotModified: true,
			wantMaxAge:      time.Minute,
		},
		{
			name:     "modified since the etag",
			srv:      &server{etag: `"v2"`},
			opts:     Options{ETag: `"v1"`},
			wantSent: size,
		},
		{
			name:       "connection closed half-way",
			srv:        &server{etag: `"v1"`, dropAfter: size / 2, dropCount: 1},
			wantRanges: []string{"bytes=524288-"},
			wantSent:   size,
		},
		{
			name: "connection reset half-way",
			// The RST discards what the client had not read yet, so
			// where it resumes varies.
			srv:      &server{etag: `"v1"`, dropAfter: size / 2, dropCount: 1, reset: true},
			anyRange: true,
			wantSent: -1,
		},
		{
			name:       "broken twice",
			srv:        &server{etag: `"v1"`, dropAfter: size / 4, dropCount: 2},
			wantRanges: []string{"bytes=262144-", "bytes=524288-"},
			wantSent:   size,
		},
		{
			name:       "body stalls",
			srv:        &server{etag: `"v1"`, stallAfter: size / 2},
			opts:       Options{StallTimeout: 300 * time.Millisecond},
			wantRanges: []string{"bytes=524288-"},
			wantSent:   size,
		},
		{
			name:       "resume an earlier download",
			srv:        &server{etag: `"v1"`},
			seed:       content[:third],
			seedMeta:   etagMeta,
			wantRanges: []string{"bytes=349525-"},
			wantSent:   size - third,
		},
		{
			name:       "resume with last-modified",
			srv:        &server{modTime: modTime},
			seed:       content[:third],
			seedMeta:   &meta{Validator: modTime.Format(http.TimeFormat), Size: size},
			wantRanges: []string{"bytes=349525-"},
			wantSent:   size - third,
		},
		{
			name:       "resume in short ranges",
			srv:        &server{etag: `"v1"`, maxChunk: size / 4},
			seed:       content[:third],
			seedMeta:   etagMeta,
			wantRanges: []string{"bytes=349525-", "bytes=611669-", "bytes=873813-"},
			wantSent:   size - third,
		},
		{
			name:       "server ignores range",
			srv:        &server{etag: `"v1"`, ignoreRange: true},
			seed:       garbage,
			seedMeta:   etagMeta,
			wantRanges: []string{"bytes=349525-"},
			wantSent:   size,
		},
		{
			name:       "object changed since the partial download",
			srv:        &server{etag: `"v2"`},
			seed:       garbage,
			seedMeta:   etagMeta,
			wantRanges: []string{"bytes=349525-"},
			wantSent:   size,
		},
		{
			name:     "partial without meta",
			srv:      &server{etag: `"v1"`},
			seed:     garbage,
			wantSent: size,
		},
		{
			name:     "partial of another URL",
			srv:      &server{etag: `"v1"`},
			seed:     garbage,
			seedMeta: &meta{URL: "https://elsewhere.test/x.aci", ETag: `"v1"`, Validator: `"v1"`, Size: size},
			wantSent: size,
		},
		{
			name:       "partial already complete",
			srv:        &server{etag: `"v1"`},
			seed:       content,
			seedMeta:   etagMeta,
			wantRanges: []string{"bytes=1048576-"},
			wantSent:   0,
		},
		{
			name:       "partial longer than the object",
			srv:        &server{etag: `"v1"`},
			seed:       append(append([]byte(nil), content...), garbage...),
			seedMeta:   &meta{ETag: `"v1"`, Validator: `"v1"`, Size: -1},
			wantRanges: []string{"bytes=1398101-"},
			wantSent:   size,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.srv.content = content
			ts := tt.srv.start(t, false)
			url := ts.URL + "/images/busybox.aci"
			partial := filepath.Join(t.TempDir(), "partial")
			if tt.seedMeta != nil && tt.seedMeta.URL == "" {
				tt.seedMeta.URL = url
				defer func() { tt.seedMeta.URL = "" }()
			}
			seed(t, partial, tt.seed, tt.seedMeta)
			opts := tt.opts
			opts.InsecureHTTP = true
			opts.Log = testLog(t)
			// Every case hashes as it writes: resumed prefixes, restarts
			// and broken bodies must all leave the sum of the whole file.
			opts.Hash = sha256.New

			res, err := Fetch(t.Context(), url, partial, opts)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			reqs, sent := tt.srv.seen()
			if got := ranges(reqs); tt.anyRange && len(got) == 0 {
				t.Errorf("server saw no range request")
			} else if !tt.anyRange && strings.Join(got, " ") != strings.Join(tt.wantRanges, " ") {
				t.Errorf("server saw ranges %q, want %q", got, tt.wantRanges)
			}
			if (tt.wantSent >= 0 && sent != tt.wantSent) || (tt.wantSent < 0 && sent < size) {
				t.Errorf("server sent %d body bytes, want %d", sent, tt.wantSent)
			}
			if res.NotModified != tt.wantNotModified {
				t.Errorf("NotModified = %v, want %v", res.NotModified, tt.wantNotModified)
			}
			if res.MaxAge != tt.wantMaxAge {
				t.Errorf("MaxAge = %v, want %v", res.MaxAge, tt.wantMaxAge)
			}
			if res.URL != url {
				t.Errorf("URL = %q, want %q", res.URL, url)
			}
			if tt.srv.etag != "" && res.ETag != tt.srv.etag {
				t.Errorf("ETag = %q, want %q", res.ETag, tt.srv.etag)
			}
			if tt.wantProgress != "" {
				if out := opts.Progress.(*bytes.Buffer).String(); !strings.Contains(out, tt.wantProgress) {
					t.Errorf("progress output %q lacks %q", out, tt.wantProgress)
				}
			}
			if tt.wantNotModified {
				if res.Path != "" || res.Size != 0 {
					t.Errorf("not modified, yet Path = %q, Size = %d", res.Path, res.Size)
				}
				return
			}
			if res.Path != partial || res.Size != size {
				t.Errorf("Path = %q, Size = %d; want %q, %d", res.Path, res.Size, partial, size)
			}
			checkFile(t, partial, content)
			if want := sha256.Sum256(content); !bytes.Equal(res.Sum, want[:]) {
				t.Errorf("Sum = %x, want the file's %x", res.Sum, want)
			}
			if _, err := os.Stat(partial + metaSuffix); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("download state left behind after success: %v", err)
			}
		})
	}
}

// TestFetchResumesAfterCancel kills a transfer with its context, as a
// signal would, and checks that the next Fetch only asks for the rest.
func TestFetchResumesAfterCancel(t *testing.T) {
	content := testContent(size)
	srv := &server{content: content, etag: `"v1"`, slow: true}
	ts := srv.start(t, false)
	partial := filepath.Join(t.TempDir(), "partial")
	opts := Options{InsecureHTTP: true, Log: testLog(t)}

	// Cancel as soon as the first bytes are on disk; the whole body
	// would take over a second.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if st, err := os.Stat(partial); err == nil && st.Size() > 0 {
				cancel()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	start := time.Now()
	_, err := Fetch(ctx, ts.URL+"/x.aci", partial, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch after cancel: %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("cancel took %v to stop the transfer", el)
	}
	st, err := os.Stat(partial)
	if err != nil {
		t.Fatalf("partial file gone after cancel: %v", err)
	}
	held := st.Size()
	if held == 0 || held >= size {
		t.Fatalf("partial file holds %d bytes, want a prefix", held)
	}
	if _, err := os.Stat(partial + metaSuffix); err != nil {
		t.Fatalf("download state gone after cancel: %v", err)
	}

	srv.slow = false
	opts.Hash = sha256.New // the prefix on disk is hashed, then the rest as it comes
	res, err := Fetch(t.Context(), ts.URL+"/x.aci", partial, opts)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	checkFile(t, res.Path, content)
	if want := sha256.Sum256(content); !bytes.Equal(res.Sum, want[:]) {
		t.Errorf("Sum = %x, want the file's %x", res.Sum, want)
	}
	reqs, _ := srv.seen()
	if got, want := ranges(reqs), "bytes="+strconv.FormatInt(held, 10)+"-"; len(got) != 1 || got[0] != want {
		t.Errorf("resume sent ranges %q, want [%q]", got, want)
	}
}

// TestFetchGivesUp checks a transfer that keeps breaking: the error is
// Unavailable, and the partial file and its state stay for a later Fetch.
func TestFetchGivesUp(t *testing.T) {
	content := testContent(size)
	srv := &server{content: content, etag: `"v1"`, dropAfter: 0, dropCount: 100}
	ts := srv.start(t, false)
	partial := filepath.Join(t.TempDir(), "partial")
	_, err := Fetch(t.Context(), ts.URL+"/x.aci", partial, Options{InsecureHTTP: true, Retries: 2, Log: testLog(t)})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("Fetch: %v, want unavailable after 3 attempts", err)
	}
	if _, err := os.Stat(partial + metaSuffix); err != nil {
		t.Errorf("download state gone: %v", err)
	}
	Discard(partial)
	for _, p := range []string{partial, partial + metaSuffix} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Discard left %s: %v", p, err)
		}
	}
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestFetchErrors(t *testing.T) {
	content := testContent(64 << 10)
	type env struct {
		url   string
		opts  Options
		plain *server // a plain http server that must not be contacted
	}
	tests := []struct {
		name       string
		setup      func(t *testing.T) env
		wantClass  error
		wantText   string
		wantAs     any  // pointer to an error type the chain must hold
		wantNoFile bool // refused before touching the partial file
	}{
		{
			name: "not found",
			setup: func(t *testing.T) env {
				ts := (&server{status: http.StatusNotFound}).start(t, false)
				return env{url: ts.URL + "/missing.aci", opts: Options{InsecureHTTP: true}}
			},
			wantClass: errdefs.ErrNotFound,
			wantText:  "404 Not Found",
		},
		{
			name: "forbidden",
			setup: func(t *testing.T) env {
				ts := (&server{status: http.StatusForbidden}).start(t, false)
				return env{url: ts.URL + "/x.aci", opts: Options{InsecureHTTP: true}}
			},
			wantClass: errdefs.ErrPermissionDenied,
		},
		{
			name: "server error",
			setup: func(t *testing.T) env {
				ts := (&server{status: http.StatusServiceUnavailable}).start(t, false)
				return env{url: ts.URL + "/x.aci", opts: Options{InsecureHTTP: true}}
			},
			wantClass: errdefs.ErrUnavailable,
		},
		{
			name: "unreachable port",
			setup: func(t *testing.T) env {
				return env{url: "https://" + freePort(t) + "/x.aci"}
			},
			wantClass: errdefs.ErrUnavailable,
			wantText:  "connection refused",
		},
		{
			name: "plain http refused before connecting",
			setup: func(t *testing.T) env {
				srv := &server{content: content}
				ts := srv.start(t, false)
				return env{url: ts.URL + "/x.aci", plain: srv}
			},
			wantClass:  errdefs.ErrPermissionDenied,
			wantText:   "--insecure-options=http",
			wantNoFile: true,
		},
		{
			name: "unsupported scheme",
			setup: func(*testing.T) env {
				return env{url: "ftp://127.0.0.1/x.aci"}
			},
			wantClass:  errdefs.ErrInvalidArgument,
			wantNoFile: true,
		},
		{
			name: "malformed URL does not echo credentials",
			setup: func(*testing.T) env {
				return env{url: "https://user:s3cret@127.0.0.1:port/x.aci"}
			},
			wantClass:  errdefs.ErrInvalidArgument,
			wantText:   "parse URL",
			wantNoFile: true,
		},
		{
			name: "self-signed certificate",
			setup: func(t *testing.T) env {
				ts := (&server{content: content}).start(t, true)
				return env{url: ts.URL + "/x.aci"}
			},
			wantClass: errdefs.ErrPermissionDenied,
			wantText:  "--insecure-options=tls",
			wantAs:    new(*tls.CertificateVerificationError),
		},
		{
			name: "redirect from https to http",
			setup: func(t *testing.T) env {
				plain := &server{content: content}
				pts := plain.start(t, false)
				tts := httptest.NewTLSServer(http.RedirectHandler(pts.URL+"/x.aci", http.StatusFound))
				t.Cleanup(tts.Close)
				return env{url: tts.URL + "/x.aci", opts: Options{InsecureTLS: true}, plain: plain}
			},
			wantClass: errdefs.ErrPermissionDenied,
			wantText:  "--insecure-options=http",
		},
		{
			name: "over the size limit",
			setup: func(t *testing.T) env {
				ts := (&server{content: content}).start(t, false)
				return env{url: ts.URL + "/x.aci", opts: Options{InsecureHTTP: true, MaxSize: 1000}}
			},
			wantClass: errdefs.ErrInvalidArgument,
			wantText:  "over the limit",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.setup(t)
			e.opts.Log = testLog(t)
			partial := filepath.Join(t.TempDir(), "partial")
			_, err := Fetch(t.Context(), e.url, partial, e.opts)
			t.Logf("error: %v", err)
			if !errors.Is(err, tt.wantClass) {
				t.Fatalf("Fetch: %v, want class %v", err, tt.wantClass)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q lacks %q", err, tt.wantText)
			}
			if tt.wantAs != nil && !errors.As(err, tt.wantAs) {
				t.Errorf("error %q does not hold a %T", err, tt.wantAs)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
			if _, serr := os.Stat(partial); tt.wantNoFile && !errors.Is(serr, fs.ErrNotExist) {
				t.Errorf("partial file touched: %v", serr)
			}
			// Get classifies the same way.
			if _, err := Get(t.Context(), e.url, e.opts); !errors.Is(err, tt.wantClass) {
				t.Errorf("Get: %v, want class %v", err, tt.wantClass)
			}
			if e.plain != nil {
				if reqs, _ := e.plain.seen(); len(reqs) != 0 {
					t.Errorf("plain http server got %d requests", len(reqs))
				}
			}
		})
	}
}

func TestFetchTLS(t *testing.T) {
	content := testContent(64 << 10)
	plain := &server{content: content}
	pts := plain.start(t, false)
	srv := &server{content: content, etag: `"v1"`}
	ts := srv.start(t, true)
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	redirect := httptest.NewTLSServer(http.RedirectHandler(pts.URL+"/x.aci", http.StatusFound))
	t.Cleanup(redirect.Close)
	tls2 := httptest.NewTLSServer(http.RedirectHandler(ts.URL+"/x.aci", http.StatusMovedPermanently))
	t.Cleanup(tls2.Close)
	toTLS := httptest.NewServer(http.RedirectHandler(ts.URL+"/x.aci", http.StatusFound))
	t.Cleanup(toTLS.Close)

	tests := []struct {
		name    string
		url     string
		opts    Options
		wantURL string
	}{
		{name: "insecure tls", url: ts.URL + "/x.aci", opts: Options{InsecureTLS: true}},
		{name: "own root CA", url: ts.URL + "/x.aci", opts: Options{RootCAs: roots}},
		{name: "https to http allowed with insecure http", url: redirect.URL + "/x.aci", opts: Options{InsecureTLS: true, InsecureHTTP: true}, wantURL: pts.URL + "/x.aci"},
		{name: "https to https", url: tls2.URL + "/x.aci", opts: Options{InsecureTLS: true}, wantURL: ts.URL + "/x.aci"},
		{name: "http to https", url: toTLS.URL + "/x.aci", opts: Options{InsecureTLS: true, InsecureHTTP: true}, wantURL: ts.URL + "/x.aci"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			partial := filepath.Join(t.TempDir(), "partial")
			tt.opts.Log = testLog(t)
			res, err := Fetch(t.Context(), tt.url, partial, tt.opts)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			checkFile(t, partial, content)
			want := tt.wantURL
			if want == "" {
				want = tt.url
			}
			if res.URL != want {
				t.Errorf("URL = %q, want %q", res.URL, want)
			}
		})
	}
}

func TestGet(t *testing.T) {
	small := testContent(4000)
	tests := []struct {
		name      string
		srv       *server
		handler   http.HandlerFunc // instead of srv
		opts      Options
		want      []byte
		wantClass error
	}{
		{name: "small object", srv: &server{content: small}, want: small},
		{
			name: "broken once",
			srv:  &server{content: small, etag: `"k"`, dropAfter: 1000, dropCount: 1},
			want: small,
		},
		{
			name:      "over the default limit",
			srv:       &server{content: testContent(DefaultGetLimit + 1)},
			wantClass: errdefs.ErrInvalidArgument,
		},
		{
			name: "over the limit without a length",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				for range 10 {
					_, _ = w.Write(small)
					_ = http.NewResponseController(w).Flush()
				}
			},
			opts:      Options{MaxSize: 10000},
			wantClass: errdefs.ErrInvalidArgument,
		},
		{name: "not found", srv: &server{status: http.StatusNotFound}, wantClass: errdefs.ErrNotFound},
		{
			name:      "etag ignored",
			srv:       &server{content: small, etag: `"k"`},
			opts:      Options{ETag: `"k"`},
			want:      small,
			wantClass: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var url string
			if tt.handler != nil {
				ts := httptest.NewServer(tt.handler)
				t.Cleanup(ts.Close)
				url = ts.URL
			} else {
				url = tt.srv.start(t, false).URL
			}
			opts := tt.opts
			opts.InsecureHTTP = true
			opts.Log = testLog(t)
			got, err := Get(t.Context(), url+"/key.gpg", opts)
			if tt.wantClass != nil {
				if !errors.Is(err, tt.wantClass) {
					t.Fatalf("Get: %v, want class %v", err, tt.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Get returned %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// TestRequestHeaders checks what every request carries.
func TestRequestHeaders(t *testing.T) {
	srv := &server{content: testContent(100)}
	ts := srv.start(t, false)
	opts := Options{InsecureHTTP: true, Header: http.Header{"Authorization": {"Bearer s3cret"}}}
	if _, err := Get(t.Context(), ts.URL+"/x", opts); err != nil {
		t.Fatal(err)
	}
	reqs, _ := srv.seen()
	tests := []struct {
		name, header, want string
	}{
		{name: "extra header", header: "Authorization", want: "Bearer s3cret"},
		{name: "no transparent compression", header: "Accept-Encoding", want: "identity"},
		{name: "user agent", header: "User-Agent", want: "nscn/dev"},
		{name: "no If-None-Match from Get", header: "If-None-Match", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reqs[0].Get(tt.header); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}
