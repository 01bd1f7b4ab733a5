// Package store ties the image store together: blobs (store/blob), the
// index of images (store/index) and rendered trees (store/tree). It imports
// an image only after checking it completely, so bad input leaves the store
// as it was; it orders every write so that a crash never leaves an index
// entry pointing at a missing or partial blob; and it serves the tree
// store's dependency lookups from the index.
//
// It runs in stage0. Rendering trees with their owners needs root.
package store

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/datadir"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/store/blob"
	"github.com/nosecone/nscn/store/index"
	"github.com/nosecone/nscn/store/ociblob"
	"github.com/nosecone/nscn/store/tree"
)

// Store is the image store under <datadir>/cas.
type Store struct {
	Dir   string
	Blobs *blob.Store
	Index *index.Index
	Trees *tree.Store
	// OCIBlobs holds the layers and configs of OCI images, once each.
	OCIBlobs *ociblob.Store
	// MaxOCISize bounds the uncompressed size of an OCI image's layers
	// when ExtractRootfs writes them (0: no bound); renders take theirs
	// from tree.WithMaxOCISize.
	MaxOCISize int64
	// Decoders decode zstd OCI layers when ExtractRootfs writes them
	// (renders take theirs from tree.WithDecoders).
	Decoders aci.Decoders

	// manifests remembers the manifest of every image entry this Store
	// read or wrote, by image ID and key: an image's content, manifest
	// included, never changes under its ID, so Manifest by ID needs no second index
	// transaction. A pod start reads each image's entry once to fetch it
	// and again for each tree it renders; each read opens the database.
	manifests sync.Map // image ID or key -> json.RawMessage
	// parsed holds what Manifest returned, by the ref it was asked for:
	// a pod start needs each image's manifest in prepare and again in the
	// tree planner, and parsing one (appc validates every name and
	// label) costs more than the rest of the lookup.
	parsed sync.Map // ref -> *schema.ImageManifest
}

// remember records the manifests of entries read from the index.
func (s *Store) remember(ims ...*index.Image) {
	for _, im := range ims {
		if im != nil && im.ID != "" {
			s.manifests.Store(im.ID, im.Manifest)
			s.manifests.Store(im.Key, im.Manifest)
		}
	}
}

// Open returns the store of the data directory dataDir, creating its
// directories when needed. treeOpts configure its tree store.
func Open(_ context.Context, dataDir string, treeOpts ...tree.Option) (*Store, error) {
	dir := filepath.Join(dataDir, "cas")
	for _, d := range []string{dir, filepath.Join(dir, "tree")} {
		if err := datadir.MkdirAll(d, datadir.DirMode); err != nil {
			return nil, fmt.Errorf("create store dir: %w", err)
		}
	}
	return newStore(dir, treeOpts...), nil
}

// OpenReadOnly returns the store of the data directory dataDir for a
// reader: it creates nothing, so that a member of the nscn group, who may
// not write there, can read a data directory where no image was fetched
// yet (its index then reads as empty). Writing through it fails where
// the directories are missing.
func OpenReadOnly(_ context.Context, dataDir string, treeOpts ...tree.Option) *Store {
	return newStore(filepath.Join(dataDir, "cas"), treeOpts...)
}

func newStore(dir string, treeOpts ...tree.Option) *Store {
	s := &Store{
		Dir:   dir,
		Blobs: blob.New(dir),
		Index: index.New(filepath.Join(dir, "db", "index.db")),

		OCIBlobs: ociblob.New(dir),
	}
	s.Trees = tree.New(filepath.Join(dir, "tree"), source{s}, treeOpts...)
	return s
}

// ImportOptions tune Import.
type ImportOptions struct {
	// Source says where the image came from, for `image list`.
	Source string
	// Remote, when set, is recorded as the cache state of its URL.
	Remote *index.Remote
	// MaxSize bounds the uncompressed size (0: unlimited), so a
	// decompression bomb stops early.
	MaxSize int64
	// Decoders decode a bzip2, xz or zstd image (package aci/decoders);
	// without them such an image is an aci.ErrNoDecoder error.
	Decoders aci.Decoders
	// Check runs after the image was read completely and before its
	// dependencies are looked for and it is committed: a signature check,
	// say, or fetching the dependencies. An error aborts the import.
	Check func(ctx context.Context, m *schema.ImageManifest) (signedBy string, err error)
}

// Import reads an ACI (plain or compressed), checks it and stores it. It
// returns the index entry. On any error nothing is left in the store.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*index.Image, error) {
	tr, _, err := aci.Decompress(r, opts.Decoders)
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	defer func() { _ = tr.Close() }()
	var src io.Reader = tr
	if opts.MaxSize > 0 {
		src = aci.NewLimitedReader(tr, opts.MaxSize)
	}
	w, err := s.Blobs.NewWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	if _, err := copyCtx(ctx, w, src); err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	m, raw, err := checkImageFile(w.TempPath())
	if err != nil {
		return nil, err
	}
	// Check first: it may bring the dependencies in (a fetch by
	// discovery), and an image whose signature fails must not cause any.
	var signedBy string
	if opts.Check != nil {
		if signedBy, err = opts.Check(ctx, m); err != nil {
			return nil, err
		}
	}
	if err := s.checkDependencies(ctx, m); err != nil {
		return nil, err
	}
	unlock, err := s.lockStore(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	info, err := w.Commit(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	im := &index.Image{
		Key:        info.Key,
		ID:         info.ID,
		Name:       m.Name.String(),
		Labels:     labelMap(m.Labels),
		ImportTime: now,
		LastUsed:   now,
		Size:       info.Size,
		Manifest:   raw,
		Source:     opts.Source,
		SignedBy:   signedBy,
	}
	if err := s.record(ctx, im, opts.Remote); err != nil {
		return nil, err
	}
	return im, nil
}

// record commits im to the index, keeping the import time of an entry it
// replaces, with remote (when not nil) as the cache state of the URL it
// came from, and remembers its manifest.
func (s *Store) record(ctx context.Context, im *index.Image, remote *index.Remote) error {
	err := s.Index.Update(ctx, func(tx *index.Tx) error {
		if old, err := tx.Image(im.Key); err == nil {
			im.ImportTime = old.ImportTime
		}
		if err := tx.PutImage(im); err != nil {
			return err
		}
		if remote != nil {
			remote.Key = im.Key
			return tx.PutRemote(remote)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record image %s: %w", im.Key, err)
	}
	s.remember(im)
	return nil
}

// copyBuffers and copyBufSize size copyCtx's pipeline: enough to keep the
// reader busy while a buffer is hashed and written.
const (
	copyBuffers = 4
	copyBufSize = 1 << 20
)

// copyCtx is io.Copy that stops when ctx is cancelled, with src read on a
// goroutine of its own: on import, src inflates the image and dst hashes
// and writes it, so the two overlap on two cores instead of taking turns.
// Buffers go round between the two, never copied. It returns once the
// reading goroutine is done, so the caller may close src.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	type chunk struct {
		b   []byte
		err error
	}
	full := make(chan chunk, copyBuffers)
	free := make(chan []byte, copyBuffers)
	stop := make(chan struct{})
	for range copyBuffers {
		free <- make([]byte, copyBufSize)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(full)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			k, err := io.ReadFull(src, b)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			select {
			case full <- chunk{b: b[:k], err: err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	var n int64
	for c := range full {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if len(c.b) > 0 {
			if _, err := dst.Write(c.b); err != nil {
				return n, err
			}
			n += int64(len(c.b))
		}
		if errors.Is(c.err, io.EOF) {
			return n, nil
		}
		if c.err != nil {
			return n, c.err
		}
		free <- c.b[:cap(c.b)]
	}
	return n, nil
}

// checkImageFile validates the layout of an uncompressed ACI on disk: only
// a manifest and entries under rootfs/, no name or hard link escaping the
// image, and a manifest that passes the appc schema.
func checkImageFile(p string) (*schema.ImageManifest, []byte, error) {
	f, err := os.Open(p) //nolint:gosec // G304: a path in the store's own directory
	if err != nil {
		return nil, nil, fmt.Errorf("open image: %w", err)
	}
	defer func() { _ = f.Close() }()
	var raw []byte
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, errdefs.InvalidArgument("image is not a valid tar archive: %v", err)
		}
		name, err := checkEntryName(hdr.Name)
		if err != nil {
			return nil, nil, err
		}
		if hdr.Typeflag == tar.TypeLink {
			if _, err := checkEntryName(hdr.Linkname); err != nil {
				return nil, nil, errdefs.InvalidArgument("image entry %q: hard link target: %v", hdr.Name, err)
			}
		}
		if name == "manifest" {
			if hdr.Typeflag != tar.TypeReg {
				return nil, nil, errdefs.InvalidArgument("image manifest is not a regular file")
			}
			if hdr.Size > 16<<20 {
				return nil, nil, errdefs.InvalidArgument("image manifest is %d bytes, over the 16 MiB limit", hdr.Size)
			}
			if raw, err = io.ReadAll(tr); err != nil {
				return nil, nil, errdefs.InvalidArgument("read image manifest: %v", err)
			}
		}
	}
	if raw == nil {
		return nil, nil, errdefs.InvalidArgument("image has no manifest")
	}
	m, err := aci.ParseManifest(raw)
	if err != nil {
		return nil, nil, err
	}
	return m, raw, nil
}

// checkEntryName returns the clean name of a tar entry, refusing anything
// but the manifest and paths below rootfs.
func checkEntryName(name string) (string, error) {
	n := strings.TrimPrefix(name, "./")
	if n == "" || strings.HasPrefix(n, "/") {
		return "", errdefs.InvalidArgument("image entry %q: absolute or empty path", name)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", errdefs.InvalidArgument("image entry %q escapes the image root", name)
		}
	}
	clean := path.Clean(n)
	if clean != "manifest" && clean != "rootfs" && !strings.HasPrefix(clean, "rootfs/") {
		return "", errdefs.InvalidArgument("image entry %q is outside rootfs/", name)
	}
	return clean, nil
}

// checkDependencies fails when a dependency of m is not in the store: an
// image that cannot be rendered should not be imported silently. (A fetch
// by discovery brings the dependencies in from ImportOptions.Check.)
func (s *Store) checkDependencies(ctx context.Context, m *schema.ImageManifest) error {
	for _, d := range m.Dependencies {
		if _, err := s.ResolveDependency(ctx, d); err != nil {
			return fmt.Errorf("image %s: %w", m.Name, err)
		}
	}
	return nil
}

// ResolveDependency finds the stored image a dependency names: by its image
// ID when given (which must then match name and labels too), else the newest
// image of that name carrying every label asked for.
func (s *Store) ResolveDependency(ctx context.Context, d types.Dependency) (string, error) {
	want := labelMap(d.Labels)
	var key string
	err := s.Index.View(ctx, func(tx *index.Tx) error {
		if d.ImageID != nil && !d.ImageID.Empty() {
			k, err := tx.ResolveKey(d.ImageID.String())
			if err != nil {
				return errdefs.NotFound("dependency %s (%s) is not in the store", d.ImageName, d.ImageID)
			}
			im, err := tx.Image(k)
			if err != nil {
				return err
			}
			if im.Name != d.ImageName.String() {
				return errdefs.InvalidArgument("dependency %s names image %s, which is %s", d.ImageName, d.ImageID, im.Name)
			}
			key = k
			return nil
		}
		found, err := tx.FindByName(d.ImageName.String(), want)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return errdefs.NotFound("dependency %s%s is not in the store (fetch it first)", d.ImageName, formatLabels(want))
		}
		key = found[0].Key
		return nil
	})
	return key, err
}

// Get returns the index entry of an image by ID, key or unambiguous prefix.
func (s *Store) Get(ctx context.Context, ref string) (*index.Image, error) {
	var im *index.Image
	err := s.Index.View(ctx, func(tx *index.Tx) error {
		k, err := tx.ResolveKey(ref)
		if err != nil {
			return err
		}
		im, err = tx.Image(k)
		return err
	})
	s.remember(im)
	return im, err
}

// FindByName returns the newest image of a name with at least the given
// labels.
func (s *Store) FindByName(ctx context.Context, name string, labels map[string]string) (*index.Image, error) {
	var im *index.Image
	err := s.Index.View(ctx, func(tx *index.Tx) error {
		found, err := tx.FindByName(name, labels)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return errdefs.NotFound("no image %s%s in the store", name, formatLabels(labels))
		}
		im = found[0]
		return nil
	})
	s.remember(im)
	return im, err
}

// Images lists every stored image, oldest import first.
func (s *Store) Images(ctx context.Context) ([]*index.Image, error) {
	var out []*index.Image
	err := s.Index.View(ctx, func(tx *index.Tx) error {
		var err error
		out, err = tx.Images()
		return err
	})
	return out, err
}

// Remote returns the cache state of a URL, nil when never fetched.
func (s *Store) Remote(ctx context.Context, url string) (*index.Remote, error) {
	var r *index.Remote
	err := s.Index.View(ctx, func(tx *index.Tx) error {
		var err error
		r, err = tx.Remote(url)
		return err
	})
	return r, err
}

// RemoteImage returns the cache state of a URL and the image it names,
// read in one transaction (one open of the index instead of two). Either
// is nil when missing: a URL never fetched has neither, and a remote whose
// image was removed since has no image.
func (s *Store) RemoteImage(ctx context.Context, url string) (*index.Remote, *index.Image, error) {
	var (
		r  *index.Remote
		im *index.Image
	)
	err := s.Index.View(ctx, func(tx *index.Tx) error {
		var err error
		if r, err = tx.Remote(url); err != nil || r == nil {
			return err
		}
		im, err = tx.Image(r.Key)
		if errors.Is(err, errdefs.ErrNotFound) {
			im, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	s.remember(im)
	return r, im, nil
}

// TouchRemote records that a cached URL was revalidated (304).
func (s *Store) TouchRemote(ctx context.Context, r *index.Remote) error {
	return s.Index.Update(ctx, func(tx *index.Tx) error { return tx.PutRemote(r) })
}

// MarkUsed updates the last-use time of images, in one transaction: a pod
// start marks its stage1 and app images with one commit instead of one
// each.
func (s *Store) MarkUsed(ctx context.Context, keys ...string) error {
	now := time.Now().UTC()
	return s.Index.Update(ctx, func(tx *index.Tx) error {
		for _, key := range keys {
			im, err := tx.Image(key)
			if err != nil {
				return err
			}
			im.LastUsed = now
			if err := tx.PutImage(im); err != nil {
				return err
			}
		}
		return nil
	})
}

// Remove deletes an image that refs does not hold (an *InUseError says
// who holds it): its index entry first, then the blob, so a crash in
// between leaves only an orphan blob, which GC removes. Trees rendered
// from the image are removed too. The caller holds LockReferences
// exclusive from collecting refs until Remove returns.
func (s *Store) Remove(ctx context.Context, ref string, refs References) (*index.Image, error) {
	im, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	trees, err := s.Trees.List(ctx)
	if err != nil {
		return nil, err
	}
	if h := refs.imageHolders(im.Key, trees); len(h) > 0 {
		return nil, &InUseError{Key: im.Key, Name: im.Name, Holders: h}
	}
	err = s.Index.Update(ctx, func(tx *index.Tx) error {
		if _, err := tx.Image(im.Key); err != nil {
			return err
		}
		return tx.DeleteImage(im.Key)
	})
	if err != nil {
		return nil, err
	}
	if err := s.Blobs.Remove(ctx, im.Key); err != nil {
		return im, err
	}
	if im.OCI != nil {
		if err := s.RemoveUnusedOCIBlobs(ctx, im.OCI.Blobs()); err != nil {
			return im, err
		}
	}
	for _, t := range trees {
		for _, id := range t.ImageIDs {
			if blob.KeyFromID(id) == im.Key {
				if err := s.Trees.Remove(ctx, t.Key); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
					return im, err
				}
				break
			}
		}
	}
	return im, nil
}

// Manifest returns a stored image's manifest, parsed once per Store and
// ref: the result is shared, and callers must not modify it.
func (s *Store) Manifest(ctx context.Context, ref string) (*schema.ImageManifest, error) {
	if m, ok := s.parsed.Load(ref); ok {
		return m.(*schema.ImageManifest), nil
	}
	var raw json.RawMessage
	if r, ok := s.manifests.Load(ref); ok {
		raw = r.(json.RawMessage)
	} else {
		im, err := s.Get(ctx, ref)
		if err != nil {
			return nil, err
		}
		raw = im.Manifest
	}
	m, err := aci.ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	s.parsed.Store(ref, m)
	return m, nil
}

// ExtractRootfs writes the filesystem of one stored image, without its
// dependencies, into dest: an ACI's rootfs, or an OCI image's layers
// applied in order.
func (s *Store) ExtractRootfs(ctx context.Context, im *index.Image, dest string, opts aci.ExtractOptions) error {
	if im.OCI != nil {
		layers, err := source{s}.OCILayers(ctx, im.ID)
		if err != nil {
			return err
		}
		return tree.ExtractOCILayers(ctx, layers, dest, opts, s.Decoders, s.MaxOCISize)
	}
	blob, err := s.Blobs.Open(ctx, im.Key)
	if err != nil {
		return err
	}
	defer func() { _ = blob.Close() }()
	return aci.ExtractRootfs(ctx, blob, dest, opts)
}

// source adapts the store to what the tree store needs.
type source struct{ s *Store }

func (src source) OpenImage(ctx context.Context, id string) (io.ReadCloser, error) {
	return src.s.Blobs.Open(ctx, blob.KeyFromID(id))
}

func (src source) Manifest(ctx context.Context, id string) (*schema.ImageManifest, error) {
	return src.s.Manifest(ctx, id)
}

func (src source) OCILayers(ctx context.Context, id string) ([]tree.OCILayer, error) {
	im, err := src.s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if im.OCI == nil {
		return nil, nil
	}
	out := make([]tree.OCILayer, len(im.OCI.Layers))
	for i, l := range im.OCI.Layers {
		d := l.Digest
		out[i] = tree.OCILayer{Digest: d, DiffID: l.DiffID, OpenBlob: func(ctx context.Context) (io.ReadCloser, error) {
			return src.s.OCIBlobs.Open(ctx, d)
		}}
	}
	return out, nil
}

func (src source) ResolveDependency(ctx context.Context, d types.Dependency) (string, error) {
	return src.s.ResolveDependency(ctx, d)
}

func labelMap(ls types.Labels) map[string]string {
	if len(ls) == 0 {
		return nil
	}
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Name.String()] = l.Value
	}
	return m
}

func formatLabels(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return " (" + strings.Join(parts, ",") + ")"
}

// Remotes returns every remote entry of the index: the URLs and tags
// fetched and the image each names now.
func (s *Store) Remotes(ctx context.Context) ([]*index.Remote, error) {
	var out []*index.Remote
	err := s.Index.View(ctx, func(tx *index.Tx) error {
		var err error
		out, err = tx.Remotes()
		return err
	})
	return out, err
}
