package download

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// server is a static file server on loopback with faults to inject. It
// answers like http.ServeContent (Range, If-Range, If-None-Match) unless a
// fault says otherwise, and records what it saw and sent.
type server struct {
	content      []byte
	etag         string    // "" sends none
	modTime      time.Time // zero sends no Last-Modified
	cacheControl string
	age          string
	ignoreRange  bool  // answer every request with the whole object
	maxChunk     int64 // > 0: 206 answers carry at most this many bytes

	// The first dropCount requests get the headers and dropAfter body
	// bytes, then the connection breaks (with an RST when reset).
	dropAfter int64
	dropCount int
	reset     bool

	// The first request gets stallAfter bytes, then nothing until the
	// client goes away.
	stallAfter int64

	// slow sends the body in small, spaced writes.
	slow bool

	// status, when set, is answered to every request.
	status int

	mu       sync.Mutex
	requests []http.Header
	sent     int64
	n        int
}

// testContent returns size reproducible pseudo-random bytes.
func testContent(size int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{'n', 's', 'c', 'n'})) //nolint:gosec // G404: deterministic data from a fixed seed, not a secret
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32()) //nolint:gosec // G115: the low byte is the noise wanted
	}
	return b
}

// start serves s on loopback (https when tls) and returns the server.
func (s *server) start(t *testing.T, tls bool) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	if tls {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	return ts
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Header.Clone())
	s.n++
	n := s.n
	s.mu.Unlock()

	if s.status != 0 {
		http.Error(w, http.StatusText(s.status), s.status)
		return
	}
	h := w.Header()
	if s.etag != "" {
		h.Set("ETag", s.etag)
	}
	if s.cacheControl != "" {
		h.Set("Cache-Control", s.cacheControl)
	}
	if s.age != "" {
		h.Set("Age", s.age)
	}
	switch {
	case n <= s.dropCount:
		s.drop(w, r)
		return
	case n == 1 && s.stallAfter > 0:
		s.stall(w, r)
		return
	case s.ignoreRange:
		h.Set("Content-Length", strconv.Itoa(len(s.content)))
		s.write(w, s.content)
		return
	case s.maxChunk > 0 && r.Header.Get("Range") != "":
		s.chunk(w, r)
		return
	case s.slow:
		h.Set("Content-Length", strconv.Itoa(len(s.content)))
		s.trickle(w, r)
		return
	}
	http.ServeContent(&counter{ResponseWriter: w, s: s}, r, "", s.modTime, bytes.NewReader(s.content))
}

// offset reads "bytes=N-" (the only form the client sends).
func offset(r *http.Request) int64 {
	v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes=")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(v, "-"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// head writes the status line and headers for the body from off (a 206
// when off > 0) straight to a hijacked connection.
func (s *server) head(bw *bufio.Writer, off int64) {
	size := int64(len(s.content))
	if off > 0 {
		_, _ = fmt.Fprintf(bw, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\n", off, size-1, size)
	} else {
		_, _ = fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\n")
	}
	if s.etag != "" {
		_, _ = fmt.Fprintf(bw, "ETag: %s\r\n", s.etag)
	}
	_, _ = fmt.Fprintf(bw, "Content-Length: %d\r\n\r\n", size-off)
}

// drop sends part of the body and breaks the connection.
func (s *server) drop(w http.ResponseWriter, r *http.Request) {
	conn, bw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // the client sees a dropped connection anyway
	}
	defer func() { _ = conn.Close() }()
	off := offset(r)
	s.head(bw.Writer, off)
	end := min(off+s.dropAfter, int64(len(s.content)))
	n, _ := bw.Write(s.content[off:end])
	s.count(n)
	_ = bw.Flush()
	if tc, ok := conn.(*net.TCPConn); ok && s.reset {
		_ = tc.SetLinger(0) // close with an RST: "connection reset by peer"
	}
}

// stall sends part of the body and then nothing.
func (s *server) stall(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(len(s.content)))
	s.write(w, s.content[:s.stallAfter])
	_ = http.NewResponseController(w).Flush()
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// chunk answers a range with at most maxChunk bytes.
func (s *server) chunk(w http.ResponseWriter, r *http.Request) {
	if ir := r.Header.Get("If-Range"); ir != "" && ir != s.etag {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.content)))
		s.write(w, s.content)
		return
	}
	size := int64(len(s.content))
	off := offset(r)
	end := min(off+s.maxChunk, size)
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, end-1, size))
	w.Header().Set("Content-Length", strconv.FormatInt(end-off, 10))
	w.WriteHeader(http.StatusPartialContent)
	s.write(w, s.content[off:end])
}

// trickle sends the whole body in 16 KiB writes 20 ms apart.
func (s *server) trickle(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	for i := 0; i < len(s.content); i += 16 << 10 {
		if !s.write(w, s.content[i:min(i+16<<10, len(s.content))]) {
			return
		}
		_ = rc.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *server) write(w io.Writer, p []byte) bool {
	n, err := w.Write(p)
	s.count(n)
	return err == nil
}

func (s *server) count(n int) {
	s.mu.Lock()
	s.sent += int64(n)
	s.mu.Unlock()
}

// seen returns the requests so far and the body bytes sent.
func (s *server) seen() ([]http.Header, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.requests...), s.sent
}

// counter counts the body bytes ServeContent writes for the object (not
// those of error pages).
type counter struct {
	http.ResponseWriter
	s      *server
	status int
}

func (c *counter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	if c.status == 0 || c.status == http.StatusOK || c.status == http.StatusPartialContent {
		c.s.count(n)
	}
	return n, err
}
