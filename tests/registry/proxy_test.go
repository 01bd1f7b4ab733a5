//go:build functional

package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// proxy is a reverse proxy on 127.0.0.1 in front of a plain-http test
// registry. It logs every request it forwards (method, path, Range header,
// status, body bytes delivered to the client), and can misbehave for one
// blob: flip a byte of it (tamper) or stop sending it after some bytes
// (stall), the way a broken mirror or a dropped connection would. The
// log, not the client's own account, is what the tests assert on.
type proxy struct {
	t    *testing.T
	host string // 127.0.0.1:PORT, the registry part of references through it

	mu     sync.Mutex
	log    []request
	tamper map[string]int64 // blob digest -> offset of the byte to flip, in every response
	stall  map[string]int64 // blob digest -> bytes sent before the first GET of it stops sending
	// stalled receives a blob's digest when a stall starts.
	stalled chan string
}

// request is one forwarded request as the proxy saw it.
type request struct {
	method, path string
	rangeHdr     string // the client's Range header, "" if none
	status       int
	bytes        int64  // body bytes written to the client
	blob         string // digest, for /v2/NAME/blobs/DIGEST
	manifest     string // tag or digest, for /v2/NAME/manifests/REF
}

var (
	blobPath     = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[0-9a-f]{64})$`)
	manifestPath = regexp.MustCompile(`^/v2/.+/manifests/([^/]+)$`)
)

// startProxy starts a proxy to the registry (which must be plain http),
// stopped when the test ends.
func startProxy(t *testing.T, r *registry) *proxy {
	t.Helper()
	if r.opts.tls {
		t.Fatal("startProxy: the proxies front plain-http registries only")
	}
	target, err := url.Parse(r.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, tamper: map[string]int64{}, stall: map[string]int64{}, stalled: make(chan string, 16)}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The registry builds its Location headers from Host: keep
			// the client's, so uploads come back through the proxy.
			pr.Out.Host = pr.In.Host
		},
		Transport: r.transport(),
		// Write every chunk through at once: a stalled client must hold
		// exactly the bytes the log says it was sent.
		FlushInterval:  -1,
		ModifyResponse: p.modify,
		ErrorLog:       log.New(io.Discard, "", 0),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.host = l.Addr().String()
	srv := &http.Server{Handler: p.handler(rp), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			// A stalled response never ends by itself.
			_ = srv.Close()
		}
	})
	return p
}

// ref is the docker:// reference of repoRef through the proxy.
func (p *proxy) ref(repoRef string) string { return "docker://" + p.host + "/" + repoRef }

// tamperBlob makes every response carrying the blob flip the byte at
// offset of the blob.
func (p *proxy) tamperBlob(digest string, offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper[digest] = offset
}

// stallBlob makes the first GET of the blob send n bytes of its body and
// then nothing more until the client goes away.
func (p *proxy) stallBlob(digest string, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall[digest] = n
}

// requests returns a copy of the log.
func (p *proxy) requests() []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]request(nil), p.log...)
}

// blobGets returns the GETs of the blob that the registry answered with
// its content (200 or 206).
func (p *proxy) blobGets(digest string) []request {
	var out []request
	for _, r := range p.requests() {
		if r.method == http.MethodGet && r.blob == digest && (r.status == http.StatusOK || r.status == http.StatusPartialContent) {
			out = append(out, r)
		}
	}
	return out
}

// blobBytes is the body bytes of the blob served in all.
func (p *proxy) blobBytes(digest string) int64 {
	var n int64
	for _, r := range p.blobGets(digest) {
		n += r.bytes
	}
	return n
}

// manifestGets counts the GETs of a manifest by tag or digest answered 200.
func (p *proxy) manifestGets(ref string) int {
	n := 0
	for _, r := range p.requests() {
		if r.method == http.MethodGet && r.manifest == ref && r.status == http.StatusOK {
			n++
		}
	}
	return n
}

// dump is the log, one line a request, for failure messages.
func (p *proxy) dump() string {
	var b strings.Builder
	for _, r := range p.requests() {
		fmt.Fprintf(&b, "%s %s range=%q -> %d, %d bytes\n", r.method, r.path, r.rangeHdr, r.status, r.bytes)
	}
	return b.String()
}

// counter counts the body bytes the handler writes to the client.
type counter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *counter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *counter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// Flush lets the reverse proxy's FlushInterval reach the connection.
func (c *counter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (p *proxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c := &counter{ResponseWriter: w}
		// Deferred: the reverse proxy aborts a response whose body read
		// fails (a stall the client gave up on) with a panic, and the log
		// must have it too.
		defer func() {
			r := request{method: req.Method, path: req.URL.Path, rangeHdr: req.Header.Get("Range"), status: c.status, bytes: c.n}
			if m := blobPath.FindStringSubmatch(req.URL.Path); m != nil {
				r.blob = m[1]
			} else if m := manifestPath.FindStringSubmatch(req.URL.Path); m != nil {
				r.manifest = m[1]
			}
			p.mu.Lock()
			p.log = append(p.log, r)
			p.mu.Unlock()
		}()
		next.ServeHTTP(c, req)
	})
}

// modify wraps the body of a blob's response as the blob's rules say.
func (p *proxy) modify(resp *http.Response) error {
	m := blobPath.FindStringSubmatch(resp.Request.URL.Path)
	if m == nil || resp.Request.Method != http.MethodGet || resp.StatusCode/100 != 2 {
		return nil
	}
	digest := m[1]
	start, err := contentStart(resp)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if off, ok := p.tamper[digest]; ok {
		resp.Body = &flipper{ReadCloser: resp.Body, pos: start, at: off}
	}
	if n, ok := p.stall[digest]; ok {
		delete(p.stall, digest) // the first GET only
		resp.Body = &staller{ReadCloser: resp.Body, left: n, ctx: resp.Request.Context(), onStall: func() { p.stalled <- digest }}
	}
	return nil
}

// contentStart is the blob offset of the response's first body byte: 0,
// or the start of its Content-Range.
func contentStart(resp *http.Response) (int64, error) {
	if resp.StatusCode != http.StatusPartialContent {
		return 0, nil
	}
	cr := resp.Header.Get("Content-Range") // bytes START-END/SIZE
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, fmt.Errorf("proxy: Content-Range %q", cr)
	}
	s, _, _ = strings.Cut(s, "-")
	return strconv.ParseInt(s, 10, 64)
}

// flipper inverts the byte at blob offset at.
type flipper struct {
	io.ReadCloser
	pos, at int64
}

func (f *flipper) Read(b []byte) (int, error) {
	n, err := f.ReadCloser.Read(b)
	if i := f.at - f.pos; i >= 0 && i < int64(n) {
		b[i] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

// staller passes left bytes through, then blocks until the request's
// context ends (the client hung up, or the server shut down).
type staller struct {
	io.ReadCloser
	left    int64
	ctx     context.Context
	onStall func()
	once    sync.Once
}

func (s *staller) Read(b []byte) (int, error) {
	if s.left > 0 {
		if int64(len(b)) > s.left {
			b = b[:s.left]
		}
		n, err := s.ReadCloser.Read(b)
		s.left -= int64(n)
		return n, err
	}
	s.once.Do(s.onStall)
	<-s.ctx.Done()
	return 0, errors.New("proxy: stalled transfer abandoned by the client")
}
