// Package index is the store's catalogue of images: for each image its
// names, labels, sizes and times, and for images fetched from a URL the
// remote's cache state (ETag, max-age, signature URL).
//
// It is a bbolt database file. bbolt was chosen because it is embedded,
// pure Go (nscn stays static), and gives fsynced, atomic transactions plus
// an exclusive flock on the file, which serialises writers across
// processes. The database is opened for each transaction and closed right
// after, so several nscn processes share it, and a long download never holds
// it. The package runs in stage0 and needs write access to its file only.
//
// Crash safety comes from ordering, not from the database alone: callers
// commit a blob before they add its entry, and delete the entry before the
// blob, so no committed entry ever names a missing or partial blob.
package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/nosecone/nscn/internal/datadir"
	"github.com/nosecone/nscn/internal/errdefs"
)

var (
	bucketImages  = []byte("images")
	bucketRemotes = []byte("remotes")
)

// Image is one stored image.
type Image struct {
	Key        string            `json:"key"` // "sha512-" + 64 hex: the printed ID and blob name
	ID         string            `json:"id"`  // the full sha512 ID
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	ImportTime time.Time         `json:"importTime"`
	LastUsed   time.Time         `json:"lastUsed"`
	Size       int64             `json:"size"` // uncompressed tar bytes
	Manifest   json.RawMessage   `json:"manifest"`
	// Source is where the image came from (path or URL), for humans.
	Source string `json:"source,omitempty"`
	// Signed is the fingerprint of the key whose signature was checked,
	// empty when the image was imported without a signature check.
	SignedBy string `json:"signedBy,omitempty"`
	// OCI is set for an image fetched from an OCI or Docker source: its
	// blob then holds the OCI manifest (the image ID is its sha512), and
	// its filesystem is the layers listed here, stored once each in
	// store/ociblob and shared with every image that lists them.
	OCI *OCIImage `json:"oci,omitempty"`
}

// OCIImage is what the store keeps of an OCI or Docker image besides its
// appc manifest.
type OCIImage struct {
	Reference string `json:"reference"` // canonical reference fetched (docker://…, oci:…)
	Digest    string `json:"digest"`    // sha256 digest of the manifest
	MediaType string `json:"mediaType"` // the manifest's
	Config    string `json:"config"`    // digest of the config blob
	// Layers are in application order, bottom first.
	Layers []OCILayer `json:"layers"`
}

// OCILayer is one layer of an OCI image.
type OCILayer struct {
	Digest    string `json:"digest"` // of the blob as stored (compressed or not)
	DiffID    string `json:"diffID"` // of the uncompressed tar, from the config
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
}

// Blobs lists the OCI blobs the image uses (config and layers).
func (o *OCIImage) Blobs() []string {
	if o == nil {
		return nil
	}
	out := []string{o.Config}
	for _, l := range o.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// Remote is the cache state of an image fetched from a URL.
type Remote struct {
	URL          string        `json:"url"`
	SignatureURL string        `json:"signatureURL,omitempty"`
	ETag         string        `json:"etag,omitempty"`
	MaxAge       time.Duration `json:"maxAge,omitempty"`
	DownloadTime time.Time     `json:"downloadTime"`
	Key          string        `json:"key"`
}

// Fresh reports whether the cached copy may be used without asking the
// server again (Cache-Control: max-age not yet elapsed).
func (r *Remote) Fresh(now time.Time) bool {
	return r.MaxAge > 0 && now.Before(r.DownloadTime.Add(r.MaxAge))
}

// Index is the database at Path.
type Index struct {
	Path    string
	Timeout time.Duration // how long to wait for another process's write lock
}

// New returns the index stored at path (created on first write).
func New(path string) *Index { return &Index{Path: path, Timeout: 2 * time.Minute} }

func (ix *Index) open(ctx context.Context, readOnly bool) (*bolt.DB, error) {
	if readOnly {
		// A reader creates nothing: it may have no right to.
		if _, err := os.Stat(ix.Path); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	} else if err := datadir.MkdirAll(filepath.Dir(ix.Path), datadir.DirMode); err != nil {
		return nil, fmt.Errorf("create index dir: %w", err)
	}
	deadline := time.Now().Add(ix.Timeout)
	for {
		// bbolt's own timeout ignores ctx, so poll in short slices.
		db, err := bolt.Open(ix.Path, datadir.FileMode, &bolt.Options{Timeout: 200 * time.Millisecond, ReadOnly: readOnly})
		if err == nil && !readOnly {
			// A writer may just have created the file.
			if err := datadir.InheritGroup(ix.Path); err != nil {
				_ = db.Close()
				return nil, fmt.Errorf("open image index: %w", err)
			}
		}
		if err == nil {
			return db, nil
		}
		if !errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open image index %s: %w", ix.Path, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("open image index: %w", ctx.Err())
		}
		if time.Now().After(deadline) {
			return nil, errdefs.Unavailable("open image index %s: still locked by another nscn process after %s", ix.Path, ix.Timeout)
		}
	}
}

// View runs fn in a read transaction. A missing database reads as empty.
func (ix *Index) View(ctx context.Context, fn func(*Tx) error) error {
	db, err := ix.open(ctx, true)
	if err != nil {
		return err
	}
	if db == nil {
		return fn(&Tx{})
	}
	defer func() { _ = db.Close() }()
	return db.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// Update runs fn in a write transaction, committed atomically and durably
// when fn returns nil.
func (ix *Index) Update(ctx context.Context, fn func(*Tx) error) error {
	db, err := ix.open(ctx, false)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	return db.Update(func(btx *bolt.Tx) error {
		for _, b := range [][]byte{bucketImages, bucketRemotes} {
			if _, err := btx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create index bucket %s: %w", b, err)
			}
		}
		return fn(&Tx{tx: btx, writable: true})
	})
}

// Tx is a transaction over the index. A Tx of an index that does not exist
// yet reads as empty.
type Tx struct {
	tx       *bolt.Tx
	writable bool
}

func (t *Tx) bucket(name []byte) *bolt.Bucket {
	if t.tx == nil {
		return nil
	}
	return t.tx.Bucket(name)
}

// Images returns every image, sorted by import time.
func (t *Tx) Images() ([]*Image, error) {
	var out []*Image
	b := t.bucket(bucketImages)
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var im Image
		if err := json.Unmarshal(v, &im); err != nil {
			return fmt.Errorf("decode index entry %s: %w", k, err)
		}
		out = append(out, &im)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ImportTime.Before(out[j].ImportTime) })
	return out, err
}

// Image returns the image with exactly this key.
func (t *Tx) Image(key string) (*Image, error) {
	b := t.bucket(bucketImages)
	if b == nil {
		return nil, errdefs.NotFound("image %s is not in the store", key)
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, errdefs.NotFound("image %s is not in the store", key)
	}
	var im Image
	if err := json.Unmarshal(v, &im); err != nil {
		return nil, fmt.Errorf("decode index entry %s: %w", key, err)
	}
	return &im, nil
}

// keyPrefix begins every image key.
const keyPrefix = "sha512-"

// ResolveKey turns a full ID, a key or an unambiguous prefix of one into the
// stored key. A prefix must reach past "sha512-": "", "sha512" and
// "sha512-" begin every key, so they would name the only image of a store
// that holds one, and never the image the user meant; they are
// InvalidArgument, whatever the store holds.
func (t *Tx) ResolveKey(ref string) (string, error) {
	ref = strings.ToLower(ref)
	if strings.HasPrefix(keyPrefix, ref) {
		return "", errdefs.InvalidArgument("image ID %q names no image: give its ID, or a prefix with at least one hex digit after %q", ref, keyPrefix)
	}
	if len(ref) > len(keyPrefix)+64 {
		ref = ref[:len(keyPrefix)+64]
	}
	b := t.bucket(bucketImages)
	if b == nil {
		return "", errdefs.NotFound("image %s is not in the store", ref)
	}
	if b.Get([]byte(ref)) != nil {
		return ref, nil
	}
	var found []string
	c := b.Cursor()
	for k, _ := c.Seek([]byte(ref)); k != nil && strings.HasPrefix(string(k), ref); k, _ = c.Next() {
		found = append(found, string(k))
		if len(found) > 1 {
			return "", errdefs.InvalidArgument("image ID %s is ambiguous: it matches %s and %s", ref, found[0], found[1])
		}
	}
	if len(found) == 0 {
		return "", errdefs.NotFound("image %s is not in the store", ref)
	}
	return found[0], nil
}

// PutImage adds or replaces an image entry.
func (t *Tx) PutImage(im *Image) error {
	v, err := json.Marshal(im)
	if err != nil {
		return fmt.Errorf("encode index entry %s: %w", im.Key, err)
	}
	if err := t.tx.Bucket(bucketImages).Put([]byte(im.Key), v); err != nil {
		return fmt.Errorf("write index entry %s: %w", im.Key, err)
	}
	return nil
}

// DeleteImage removes the image entry and every remote pointing at it.
func (t *Tx) DeleteImage(key string) error {
	if err := t.tx.Bucket(bucketImages).Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete index entry %s: %w", key, err)
	}
	rb := t.tx.Bucket(bucketRemotes)
	var stale [][]byte
	err := rb.ForEach(func(k, v []byte) error {
		var r Remote
		if json.Unmarshal(v, &r) == nil && r.Key == key {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan remotes: %w", err)
	}
	for _, k := range stale {
		if err := rb.Delete(k); err != nil {
			return fmt.Errorf("delete remote %s: %w", k, err)
		}
	}
	return nil
}

// Remote returns the cache state for a URL, or nil when unknown.
func (t *Tx) Remote(url string) (*Remote, error) {
	b := t.bucket(bucketRemotes)
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(url))
	if v == nil {
		return nil, nil
	}
	var r Remote
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode remote %s: %w", url, err)
	}
	return &r, nil
}

// PutRemote records the cache state for a URL.
func (t *Tx) PutRemote(r *Remote) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode remote %s: %w", r.URL, err)
	}
	if err := t.tx.Bucket(bucketRemotes).Put([]byte(r.URL), v); err != nil {
		return fmt.Errorf("write remote %s: %w", r.URL, err)
	}
	return nil
}

// Remotes returns every remote entry.
func (t *Tx) Remotes() ([]*Remote, error) {
	b := t.bucket(bucketRemotes)
	if b == nil {
		return nil, nil
	}
	var out []*Remote
	err := b.ForEach(func(k, v []byte) error {
		var r Remote
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode remote %s: %w", k, err)
		}
		out = append(out, &r)
		return nil
	})
	return out, err
}

// FindByName returns the images with this name whose labels include every
// label in want, newest import first.
func (t *Tx) FindByName(name string, want map[string]string) ([]*Image, error) {
	all, err := t.Images()
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, im := range all {
		if im.Name != name || !labelsMatch(im.Labels, want) {
			continue
		}
		out = append(out, im)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ImportTime.After(out[j].ImportTime) })
	return out, nil
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
