package download

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Defaults for the zero values of Options.
const (
	// DefaultGetLimit caps what Get reads when Options.MaxSize is 0.
	DefaultGetLimit = 1 << 20
	// DefaultRetries is how many times in a row a broken transfer is
	// resumed without getting any further before Fetch gives up.
	DefaultRetries = 3
	// DefaultStallTimeout is how long a body may send nothing before the
	// transfer counts as broken and is resumed.
	DefaultStallTimeout = time.Minute
)

// metaSuffix names the file that keeps a partial download's validator.
const metaSuffix = ".meta"

// Options tunes one Fetch or Get. The zero value is the safe default: https
// only, verified certificates, no progress.
type Options struct {
	// InsecureHTTP allows http:// URLs and redirects to them
	// (--insecure-options=http). Without it they are refused with
	// errdefs.ErrPermissionDenied before any connection is made.
	InsecureHTTP bool
	// InsecureTLS skips certificate verification (--insecure-options=tls).
	InsecureTLS bool
	// RootCAs replaces the system roots when set.
	RootCAs *x509.CertPool
	// Header holds extra request headers, such as Authorization. Go's
	// client drops Authorization when a redirect leaves the host.
	Header http.Header
	// ETag is the validator of the copy the caller already has; Fetch sends
	// it in If-None-Match and reports a 304 as Result.NotModified. Get
	// ignores it.
	ETag string
	// Progress is where Fetch draws a progress bar (normally stderr); nil
	// draws none. Get never draws.
	Progress io.Writer
	// Label names the transfer on the progress bar; default: the URL's
	// last path element.
	Label string
	// MaxSize refuses objects larger than this many bytes. For Fetch 0
	// means no limit; for Get it means DefaultGetLimit.
	MaxSize int64
	// Retries is how many consecutive attempts that get no further are
	// made to resume a broken transfer; 0 means DefaultRetries, negative
	// means none.
	Retries int
	// StallTimeout is how long a body may send nothing before it counts
	// as broken; 0 means DefaultStallTimeout, negative means no limit.
	StallTimeout time.Duration
	// Client replaces the built-in client (tests, a shared transport).
	// Its transport then owns TLS, so InsecureTLS and RootCAs are ignored;
	// its redirect policy still runs after the plain-http rule.
	Client *http.Client
	// ContentAddressed says the URL names one content forever (a registry
	// blob by digest, which the caller checks once it is complete): a
	// broken transfer is resumed with Range even when the server sends no
	// validator (ETag, Last-Modified) to guard it with If-Range.
	ContentAddressed bool
	// Hash, when set, hashes the file's bytes as they are written (a
	// resumed download's prefix is read once to start it): Result.Sum,
	// so that a caller checking a digest does not read the file again.
	Hash func() hash.Hash
	// Log receives debug records about resumes and restarts; nil discards.
	Log *slog.Logger
}

// Result describes a finished Fetch.
type Result struct {
	// NotModified is true when the server answered 304 to Options.ETag:
	// nothing was downloaded and Path is empty.
	NotModified bool
	// ETag is the object's validator, for the next Options.ETag; empty
	// when the server sent none.
	ETag string
	// MaxAge is how long the object may be used without revalidation:
	// Cache-Control max-age less the response's Age, and 0 when absent or
	// with no-cache or no-store.
	MaxAge time.Duration
	// Size is the object's length in bytes.
	Size int64
	// Path is the completed, fsynced file (the partialPath given to Fetch).
	Path string
	// URL is where the object came from after redirects.
	URL string
	// Sum is Options.Hash's sum of the file's bytes, or nil.
	Sum []byte
}

// Fetch downloads rawURL into the file at partialPath and returns what it got.
//
// If the file already holds a prefix of the same object from an earlier,
// broken Fetch (its validator is in partialPath+".meta"), Fetch asks only for
// the rest, with Range and If-Range; it starts over when the server sends the
// whole object or the object changed. A transfer that breaks mid-body is
// resumed a few times with a short backoff. When Fetch fails, the partial
// file and its meta are kept so that a later Fetch can resume; Discard
// removes them.
//
// On success the file is complete and fsynced, the meta file is gone, and
// Result.Path is partialPath; the caller consumes or renames the file. With
// Options.ETag set, a 304 answer returns Result.NotModified and leaves any
// partial file as it was.
func Fetch(ctx context.Context, rawURL, partialPath string, opts Options) (res *Result, err error) {
	u, err := checkURL(rawURL, opts.InsecureHTTP)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(partialPath, os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // G304: the download's own partial and state files
	if err != nil {
		return nil, fmt.Errorf("open partial download: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			res, err = nil, fmt.Errorf("close %s: %w", partialPath, cerr)
		}
	}()

	dst := &fileSink{f: f}
	held, err := dst.open()
	if err != nil {
		return nil, err
	}
	metaPath := partialPath + metaSuffix
	m, err := loadMeta(metaPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Only costs a restart.
		opts.logger().Debug("ignoring download state", "path", metaPath, "err", err)
	}
	if held > 0 && !m.resumable(rawURL, held, opts.ContentAddressed) {
		opts.logger().Debug("partial download not resumable, starting over", "url", u.Redacted(), "path", partialPath, "size", held)
		if err := dst.reset(); err != nil {
			return nil, err
		}
		m = meta{}
	}

	if opts.Hash != nil {
		if err := dst.hashFrom(opts.Hash()); err != nil {
			return nil, err
		}
	}
	client, done := opts.client()
	defer done()
	t := &transfer{
		client:      client,
		url:         rawURL,
		shown:       u.Redacted(),
		dst:         dst,
		meta:        m,
		ifNoneMatch: opts.ETag,
		maxSize:     opts.MaxSize,
		retries:     opts.retries(),
		stall:       opts.stallTimeout(),
		header:      opts.Header,
		log:         opts.logger(),
		persist:     func(m meta) error { return saveMeta(metaPath, m) },
		progress:    opts.Progress,
		label:       opts.Label,
		immutable:   opts.ContentAddressed,
	}
	if t.label == "" {
		t.label = path.Base(u.Path)
	}
	defer func() { t.bar.Done() }() // the bar appears with the first response
	res, err = t.run(ctx)
	if err != nil {
		return nil, err
	}
	if res.NotModified {
		return res, nil
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", partialPath, err)
	}
	if err := os.Remove(metaPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove download state: %w", err)
	}
	res.Path = partialPath
	if dst.h != nil {
		res.Sum = dst.h.Sum(nil)
	}
	return res, nil
}

// Get downloads a small object (a signature, a key) into memory. It refuses
// objects over Options.MaxSize (DefaultGetLimit when 0) with
// errdefs.ErrInvalidArgument, and resumes a broken transfer like Fetch does,
// without keeping anything on disk.
func Get(ctx context.Context, rawURL string, opts Options) ([]byte, error) {
	u, err := checkURL(rawURL, opts.InsecureHTTP)
	if err != nil {
		return nil, err
	}
	limit := opts.MaxSize
	if limit <= 0 {
		limit = DefaultGetLimit
	}
	client, done := opts.client()
	defer done()
	dst := &memSink{}
	t := &transfer{
		client:  client,
		url:     rawURL,
		shown:   u.Redacted(),
		dst:     dst,
		maxSize: limit,
		retries: opts.retries(),
		stall:   opts.stallTimeout(),
		header:  opts.Header,
		log:     opts.logger(),
	}
	if _, err := t.run(ctx); err != nil {
		return nil, err
	}
	return dst.buf.Bytes(), nil
}

// Discard removes a partial download and its state, so that the next Fetch
// into partialPath starts from zero. Files that do not exist are fine; other
// failures are ignored, since a leftover only costs disk space until the next
// Fetch reuses the path.
func Discard(partialPath string) {
	_ = os.Remove(partialPath)
	_ = os.Remove(partialPath + metaSuffix)
	_ = os.Remove(partialPath + metaSuffix + ".tmp")
}

func (o *Options) retries() int {
	switch {
	case o.Retries == 0:
		return DefaultRetries
	case o.Retries < 0:
		return 0
	}
	return o.Retries
}

func (o *Options) stallTimeout() time.Duration {
	switch {
	case o.StallTimeout == 0:
		return DefaultStallTimeout
	case o.StallTimeout < 0:
		return 0
	}
	return o.StallTimeout
}

func (o *Options) logger() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// sink is where a transfer puts the body: it only grows, or is emptied to
// start over.
type sink interface {
	io.Writer
	size() int64
	reset() error
}

// fileSink appends to the partial file.
type fileSink struct {
	f *os.File
	n int64
	h hash.Hash // of the file's n bytes, when set (hashFrom)
}

// hashFrom makes h hash the file: the n bytes it holds now, read once,
// and then every write.
func (s *fileSink) hashFrom(h hash.Hash) error {
	if s.n > 0 {
		if _, err := io.Copy(h, io.NewSectionReader(s.f, 0, s.n)); err != nil {
			return fmt.Errorf("read %s: %w", s.f.Name(), err)
		}
	}
	s.h = h
	return nil
}

// open positions the file at its end and returns how much it holds.
func (s *fileSink) open() (int64, error) {
	n, err := s.f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("seek to end of %s: %w", s.f.Name(), err)
	}
	s.n = n
	return n, nil
}

func (s *fileSink) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.n += int64(n)
	if s.h != nil {
		_, _ = s.h.Write(p[:n]) // a hash.Hash never fails
	}
	return n, err
}

func (s *fileSink) size() int64 { return s.n }

func (s *fileSink) reset() error {
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate %s: %w", s.f.Name(), err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seek to start of %s: %w", s.f.Name(), err)
	}
	s.n = 0
	if s.h != nil {
		s.h.Reset()
	}
	return nil
}

// memSink collects a small body.
type memSink struct{ buf bytes.Buffer }

func (s *memSink) Write(p []byte) (int, error) { return s.buf.Write(p) }
func (s *memSink) size() int64                 { return int64(s.buf.Len()) }
func (s *memSink) reset() error                { s.buf.Reset(); return nil }

// checkURL parses raw and applies the scheme policy.
func checkURL(raw string, insecureHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// Not err itself: it repeats the URL, credentials included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, errdefs.InvalidArgument("parse URL: %w", err)
	}
	if u.Host == "" {
		return nil, errdefs.InvalidArgument("URL %s has no host", u.Redacted())
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !insecureHTTP {
			return nil, errdefs.PermissionDenied("plain http to %s is refused: use https, or --insecure-options=http to allow it", u.Redacted())
		}
	default:
		return nil, errdefs.InvalidArgument("URL %s: unsupported scheme %q (want https or http)", u.Redacted(), u.Scheme)
	}
	return u, nil
}
