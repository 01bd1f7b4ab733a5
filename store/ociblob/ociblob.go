// Package ociblob is the content-addressed store of OCI blobs: image
// layers and configs, kept as the registry or archive served them
// (compressed or not) and named by their sha256 digest, so that a layer
// two images share is stored once.
//
// A blob is written to a temporary file in the store's tmp directory
// (flock'ed while alive, as store/blob's ingests are), hashed while it
// streams, and renamed to its name only once its digest and size match
// what the manifest says and the file is fsynced: a wrong byte leaves
// nothing under a blob name. It runs in stage0 and needs write access to
// its directory only.
//
// Layout: <cas>/oci/sha256/<first two hex digits>/<64 hex digits>.
package ociblob

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/store/casfile"
)

// Store is a directory of OCI blobs. The zero value is not usable; call
// New.
type Store struct {
	dir string // <cas>
}

// New returns the store under casDir (<datadir>/cas). Directories are
// created on first write.
func New(casDir string) *Store { return &Store{dir: casDir} }

const algo = "sha256"

// ValidDigest reports whether d is "sha256:" and 64 lower-case hex digits,
// the only digests stored (and the only ones that become path names).
func ValidDigest(d string) bool {
	hx, ok := strings.CutPrefix(d, algo+":")
	if !ok || len(hx) != 64 {
		return false
	}
	for _, c := range hx {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (s *Store) root() string   { return filepath.Join(s.dir, "oci", algo) }
func (s *Store) tmpDir() string { return filepath.Join(s.dir, "tmp") }

// Path is where the blob with digest d lives (it may not exist). d must
// be valid.
func (s *Store) Path(d string) string {
	hx := strings.TrimPrefix(d, algo+":")
	return filepath.Join(s.root(), hx[:2], hx)
}

func checkDigest(d string) error {
	if !ValidDigest(d) {
		return errdefs.InvalidArgument("blob digest %q is not sha256:<64 hex digits>", d)
	}
	return nil
}

// Exists reports whether the blob is present.
func (s *Store) Exists(d string) bool {
	if !ValidDigest(d) {
		return false
	}
	_, err := os.Lstat(s.Path(d))
	return err == nil
}

// Open returns the blob's content; a missing blob is NotFound.
func (s *Store) Open(_ context.Context, d string) (*os.File, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("blob %s is not in the store", d)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	return f, nil
}

// Ingest stores the blob read from r, which must have digest d and, when
// size is not negative, that many bytes. The digest is checked as the
// bytes stream in; a mismatch is an InvalidArgument error and leaves
// nothing. A blob already present is read and checked all the same (r is
// what the caller vouches for), then kept.
func (s *Store) Ingest(ctx context.Context, r io.Reader, d string, size int64) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	w, err := s.newWriter()
	if err != nil {
		return err
	}
	defer w.abort()
	src := r
	if size >= 0 {
		// One byte more than promised is enough to know it is too long.
		src = io.LimitReader(r, size+1)
	}
	n, err := copyCtx(ctx, w.bw, src)
	if err != nil {
		return fmt.Errorf("read blob %s: %w", d, err)
	}
	if size >= 0 && n != size {
		return errdefs.InvalidArgument("blob %s: got %d bytes or more, the manifest says %d", d, n, size)
	}
	return w.commit(s, d)
}

// Adopt moves the complete file at p (a finished download in the data
// directory, on the store's filesystem) into the store as blob d, after
// checking its digest and size. sum, when not nil, is the sha256 of the
// file's bytes, taken as they were written (download.Options.Hash), and
// spares reading the file again. On a mismatch the file is removed and
// the error is InvalidArgument; either way p is gone when Adopt returns
// nil.
func (s *Store) Adopt(ctx context.Context, p, d string, size int64, sum []byte) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	f, err := os.Open(p) //nolint:gosec // G304: a download in the data directory
	if err != nil {
		return fmt.Errorf("open download of %s: %w", d, err)
	}
	defer func() { _ = f.Close() }()
	var n int64
	if sum == nil {
		h := sha256.New()
		if n, err = copyCtx(ctx, h, f); err != nil {
			return fmt.Errorf("read download of %s: %w", d, err)
		}
		sum = h.Sum(nil)
	} else {
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("stat download of %s: %w", d, err)
		}
		n = st.Size()
	}
	if got := algo + ":" + hex.EncodeToString(sum); got != d || (size >= 0 && n != size) {
		_ = os.Remove(p)
		if got != d {
			return errdefs.InvalidArgument("blob %s does not match its digest: the bytes received hash to %s", d, got)
		}
		return errdefs.InvalidArgument("blob %s: got %d bytes, the manifest says %d", d, n, size)
	}
	if err := casfile.Place(f, s.Path(d)); err != nil {
		return fmt.Errorf("store blob %s: %w", d, err)
	}
	return nil
}

// writer is an ingest in progress.
type writer struct {
	f    *os.File
	bw   *bufio.Writer
	h    hash.Hash
	done bool
}

func (s *Store) newWriter() (*writer, error) {
	// The temporary file's lock tells store/blob's Clean, which empties
	// the same tmp directory, that this ingest is alive.
	f, err := casfile.CreateTemp(s.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	h := sha256.New()
	return &writer{f: f, h: h, bw: bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)}, nil
}

func (w *writer) commit(s *Store, d string) error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	if got := algo + ":" + hex.EncodeToString(w.h.Sum(nil)); got != d {
		return errdefs.InvalidArgument("blob %s does not match its digest: the bytes received hash to %s", d, got)
	}
	if s.Exists(d) {
		return nil // same content, already durable
	}
	if err := casfile.Place(w.f, s.Path(d)); err != nil {
		return fmt.Errorf("store blob %s: %w", d, err)
	}
	w.done = true
	_ = w.f.Close()
	return nil
}

func (w *writer) abort() {
	if w.done {
		return
	}
	w.done = true
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

// Remove deletes a blob; a missing blob is not an error.
func (s *Store) Remove(_ context.Context, d string) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if err := os.Remove(s.Path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", d, err)
	}
	return nil
}

// Digests lists every blob present.
func (s *Store) Digests(_ context.Context) ([]string, error) {
	subs, err := os.ReadDir(s.root())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	var out []string
	for _, sub := range subs {
		ents, err := os.ReadDir(filepath.Join(s.root(), sub.Name()))
		if err != nil {
			return nil, fmt.Errorf("list blobs: %w", err)
		}
		for _, e := range ents {
			if d := algo + ":" + e.Name(); ValidDigest(d) {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// Verify recomputes a blob's digest; a difference is FailedPrecondition.
func (s *Store) Verify(ctx context.Context, d string) error {
	f, err := s.Open(ctx, d)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := copyCtx(ctx, h, f); err != nil {
		return fmt.Errorf("read blob %s: %w", d, err)
	}
	if got := algo + ":" + hex.EncodeToString(h.Sum(nil)); got != d {
		return errdefs.FailedPrecondition("blob %s is corrupt: its content hashes to %s", d, got)
	}
	return nil
}

// copyCtx is io.Copy that stops when ctx is cancelled.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, err := dst.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
		}
		if errors.Is(rerr, io.EOF) {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
