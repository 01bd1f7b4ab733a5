// Package blob is the content-addressed store of image blobs: each blob is
// an image's uncompressed tar, named by the sha512 of its content.
//
// A blob appears under its name only once its content is complete and
// durable (written to a temporary file, fsynced, renamed, parent fsynced),
// so a crash at any moment leaves either the whole blob or none of it,
// plus, at worst, a temporary file that Clean removes. Several processes may
// ingest the same content at once: both renames put identical bytes in
// place. The package runs in stage0 and needs no privileges beyond write
// access to its directory.
package blob

import (
	"bufio"
	"context"
	"crypto/sha512"
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

// Prefix starts every image ID.
const Prefix = "sha512-"

// KeyHexLen is how many hex digits of the sha512 name a blob: rkt stored and
// printed 256 bits of the 512, and so do we.
const KeyHexLen = 64

// Store is a blob directory. The zero value is not usable; call New.
type Store struct {
	dir string
}

// New returns the store rooted at dir (e.g. <datadir>/cas). Directories are
// created on first write.
func New(dir string) *Store { return &Store{dir: dir} }

// Info describes an ingested blob.
type Info struct {
	Key  string // "sha512-" + 64 hex digits: the image ID as printed
	ID   string // "sha512-" + all 128 hex digits
	Size int64  // bytes of the uncompressed tar
}

// KeyFromID shortens a full image ID to its key.
func KeyFromID(id string) string {
	if len(id) > len(Prefix)+KeyHexLen {
		return id[:len(Prefix)+KeyHexLen]
	}
	return id
}

// ValidKey reports whether k has the shape of a blob key.
func ValidKey(k string) bool {
	if !strings.HasPrefix(k, Prefix) || len(k) != len(Prefix)+KeyHexLen {
		return false
	}
	_, err := hex.DecodeString(k[len(Prefix):])
	return err == nil
}

func (s *Store) blobDir() string { return filepath.Join(s.dir, "blob", "sha512") }
func (s *Store) tmpDir() string  { return filepath.Join(s.dir, "tmp") }

// Path is where the blob with the given key lives (it may not exist).
func (s *Store) Path(key string) string {
	hexpart := strings.TrimPrefix(key, Prefix)
	if len(hexpart) < 2 {
		return filepath.Join(s.blobDir(), "_", key)
	}
	return filepath.Join(s.blobDir(), hexpart[:2], key)
}

// Writer is an ingest in progress: write the tar into it, then Commit or
// Abort. Commit may run a check over the complete temporary file first.
type Writer struct {
	s    *Store
	f    *os.File
	bw   *bufio.Writer
	h    hash.Hash
	size int64
	done bool
}

// NewWriter starts an ingest.
func (s *Store) NewWriter(_ context.Context) (*Writer, error) {
	f, err := casfile.CreateTemp(s.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	h := sha512.New()
	w := &Writer{s: s, f: f, h: h}
	w.bw = bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	return w, nil
}

// Write adds p to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.bw.Write(p)
	w.size += int64(n)
	return n, err
}

// TempPath is the temporary file holding what was written so far; checks
// run over it before Commit.
func (w *Writer) TempPath() string { return w.f.Name() }

// Flush pushes buffered bytes to the temporary file so TempPath is complete.
func (w *Writer) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write blob temp file: %w", err)
	}
	return nil
}

// Digest is the blob's identity so far; valid after Flush.
func (w *Writer) Digest() Info {
	id := Prefix + hex.EncodeToString(w.h.Sum(nil))
	return Info{ID: id, Key: KeyFromID(id), Size: w.size}
}

// Commit makes the blob durable under its name and returns its identity.
func (w *Writer) Commit(_ context.Context) (Info, error) {
	if w.done {
		return Info{}, errors.New("blob writer already finished")
	}
	if err := w.Flush(); err != nil {
		w.Abort()
		return Info{}, err
	}
	info := w.Digest()
	if err := casfile.Place(w.f, w.s.Path(info.Key)); err != nil {
		w.Abort()
		return Info{}, fmt.Errorf("store blob %s: %w", info.Key, err)
	}
	// Place made the content durable (its fsync reports any write error),
	// so a failing close no longer says anything about the blob.
	w.done = true
	_ = w.f.Close()
	return info, nil
}

// Abort drops the ingest and its temporary file. It is safe to call after
// Commit, which makes it a no-op, so callers can defer it.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

// Open returns the blob's content.
func (s *Store) Open(_ context.Context, key string) (*os.File, error) {
	f, err := os.Open(s.Path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.NotFound("blob %s is not in the store", key)
		}
		return nil, fmt.Errorf("open blob %s: %w", key, err)
	}
	return f, nil
}

// Exists reports whether the blob is present.
func (s *Store) Exists(key string) bool {
	_, err := os.Lstat(s.Path(key))
	return err == nil
}

// Remove deletes a blob; a missing blob is not an error.
func (s *Store) Remove(_ context.Context, key string) error {
	if !ValidKey(key) {
		return errdefs.InvalidArgument("%q is not a blob key", key)
	}
	if err := os.Remove(s.Path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", key, err)
	}
	return casfile.SyncDir(filepath.Dir(s.Path(key)))
}

// Verify recomputes the blob's hash and fails with FailedPrecondition when
// the content no longer matches its name.
func (s *Store) Verify(ctx context.Context, key string) error {
	f, err := s.Open(ctx, key)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read blob %s: %w", key, err)
	}
	got := KeyFromID(Prefix + hex.EncodeToString(h.Sum(nil)))
	if got != key {
		return errdefs.FailedPrecondition("blob %s is corrupt: its content hashes to %s", key, got)
	}
	return nil
}

// Keys lists every blob present.
func (s *Store) Keys(_ context.Context) ([]string, error) {
	var keys []string
	subs, err := os.ReadDir(s.blobDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	for _, sub := range subs {
		ents, err := os.ReadDir(filepath.Join(s.blobDir(), sub.Name()))
		if err != nil {
			return nil, fmt.Errorf("list blobs: %w", err)
		}
		for _, e := range ents {
			if ValidKey(e.Name()) {
				keys = append(keys, e.Name())
			}
		}
	}
	return keys, nil
}

// Clean removes temporary files left by ingests that crashed. An ingest in
// progress holds a flock on its file, so it is never removed from under it.
func (s *Store) Clean(ctx context.Context) error {
	return casfile.Clean(ctx, s.tmpDir())
}
