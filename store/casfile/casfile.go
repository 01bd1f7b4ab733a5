// Package casfile is how the content-addressed stores (store/blob for
// image tars, store/ociblob for registry blobs) write a file: into a
// temporary file in the store's tmp directory, flock'ed for as long as its
// writer lives so that Clean in another process leaves it alone, and, once
// the caller has checked the content, fsynced and renamed to its name in
// one step, with the directory fsynced after. A crash at any moment leaves
// the whole file under its name or nothing there, plus at worst an
// unlocked temporary file that Clean removes.
package casfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/datadir"
)

// CreateTemp makes a new temporary file in tmpDir (created 0700 if
// missing) and takes its lock. The caller writes into it, then calls Place
// or removes it.
func CreateTemp(tmpDir string) (*os.File, error) {
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	f, err := os.CreateTemp(tmpDir, "ingest-")
	if err != nil {
		return nil, fmt.Errorf("create temp file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("lock temp file: %w", err)
	}
	return f, nil
}

// Place makes the complete file f durable and names it dst: it fsyncs f,
// creates dst's directory (with the data directory's group), gives f the
// store's file mode and that directory's group, renames it over dst and
// fsyncs the directory. f stays open; the caller closes it. On an error
// before the rename, f is still at its old name.
func Place(f *os.File, dst string) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	dir := filepath.Dir(dst)
	if err := datadir.MkdirAll(dir, datadir.DirMode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := f.Chmod(datadir.FileMode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := datadir.SetGroupFrom(f, dir); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the names created or removed in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir) //nolint:gosec // G304: a directory of the store's own
	if err != nil {
		return fmt.Errorf("open dir %s for sync: %w", dir, err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// Clean removes the temporary files in tmpDir that no live writer holds:
// those left by writers that crashed. A writer in progress holds its
// file's lock, so it is never removed from under it.
func Clean(_ context.Context, tmpDir string) error {
	ents, err := os.ReadDir(tmpDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list temp dir: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(tmpDir, e.Name())
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0) //nolint:gosec // G304: a path in the store's own directory
		if err != nil {
			continue // gone already, or not ours to touch
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				_ = f.Close()
				return fmt.Errorf("remove stale temp file %s: %w", e.Name(), err)
			}
		}
		_ = f.Close()
	}
	return nil
}
