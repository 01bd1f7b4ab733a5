package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/appc/spec/schema"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nosecone/nscn/internal/download"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/internal/oci"
	"github.com/nosecone/nscn/internal/progress"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/index"
)

// parallelLayers bounds the layers downloaded at once: enough to fill a
// link when blobs come from a CDN one connection at a time, few enough
// not to hog a registry (podman's default; docker's and containerd's
// is 3).
const parallelLayers = 6

// OCIOptions are what OCI and Docker fetches need besides the Fetcher's
// common fields.
type OCIOptions struct {
	// Platform is picked from image indexes (--os, --arch); the zero value
	// is linux/amd64.
	Platform oci.Platform
	// Keychain finds registry credentials; nil means anonymous.
	Keychain authn.Keychain
	// Registry carries test seams (RootCAs).
	Registry oci.RegistryOptions
}

func (f *Fetcher) platform() oci.Platform {
	if f.OCI.Platform.OS == "" {
		p, _ := oci.ParsePlatform("", "")
		return p
	}
	return f.OCI.Platform
}

// fetchOCI fetches an image named with an OCI transport.
func (f *Fetcher) fetchOCI(ctx context.Context, s string) (*index.Image, error) {
	ref, err := oci.ParseReference(s)
	if err != nil {
		return nil, err
	}
	if ref.Transport == oci.Docker {
		return f.fetchRegistry(ctx, ref)
	}
	return f.fetchLocal(ctx, ref)
}

// notPinned is the refusal of an image nothing verifies: it says what the
// reference names now, so that the user can pin it.
func notPinned(ref oci.Reference, pinned string, now v1.Hash) error {
	return errdefs.FailedPrecondition("image %s is not pinned by digest, and OCI and Docker images carry no signature to check: "+
		"pin it as %s (what it names now), or use --insecure-options=image to take it unverified", ref, pinned+"@"+now.String())
}

func (f *Fetcher) fetchRegistry(ctx context.Context, ref oci.Reference) (*index.Image, error) {
	p := f.platform()
	key := ref.String() + "#" + p.String()
	cached, err := f.cachedRemote(ctx, key)
	if err != nil {
		return nil, err
	}
	// A tag is taken unverified with --insecure-options=image, or when the
	// operator's registries.d trusts its repository.
	insecure := f.InsecureImage || f.tagTrusted(ref)
	usable := cached != nil && (ref.Pinned() || insecure)
	switch {
	case usable && (ref.Pinned() || f.PullPolicy != PullUpdate):
		// A digest names the same content forever; a tag is looked up
		// again only with --pull-policy=update.
		return cached.image, nil
	case f.PullPolicy == PullNever && cached == nil:
		return nil, errdefs.NotFound("image %s is not in the store and the pull policy is never", ref)
	case f.PullPolicy == PullNever:
		// A tag fetched unverified before, and no check skipped now.
		d, _ := v1.NewHash(cached.remote.ETag)
		return nil, notPinned(ref, "docker://"+ref.Name.Context().Name(), d)
	}
	reg, err := oci.Connect(ctx, ref.Name.Context(), f.registryOptions())
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	f.Timeline.Mark("registry-connected")
	if !ref.Pinned() && (!insecure || cached != nil) {
		now, err := reg.Resolve(ctx, ref.Name)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		if !insecure {
			return nil, notPinned(ref, "docker://"+ref.Name.Context().Name(), now)
		}
		if cached.remote.ETag == now.String() {
			f.logger().Debug("tag still names the stored image", "image", ref.String(), "digest", now.String())
			cached.remote.DownloadTime = time.Now().UTC()
			if err := f.Store.TouchRemote(ctx, cached.remote); err != nil {
				return nil, err
			}
			return cached.image, nil
		}
	}
	im, err := reg.Image(ctx, ref.Name, p)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	f.Timeline.Mark("image-resolved")
	source := ref.String()
	if !ref.Pinned() {
		source += "@" + im.IndexDigest.String()
	}
	// One line per layer on a terminal, the parallel downloads' bars
	// redrawn together.
	board := progress.NewBoard(f.Progress)
	fetchBlob := func(ctx context.Context, l oci.Layer) error {
		return f.downloadBlob(ctx, reg, l, board)
	}
	return f.storeOCI(ctx, im, ociMeta{
		ref: ref, source: source, name: oci.ImageName(ref.Name.Context().Name()), version: ref.Tag(),
		remote: &index.Remote{URL: key, ETag: im.IndexDigest.String(), DownloadTime: time.Now().UTC()},
	}, fetchBlob)
}

// tagTrusted reports whether the registry trust policy (registries.d)
// takes a tag of ref's repository without a digest, and says so once.
func (f *Fetcher) tagTrusted(ref oci.Reference) bool {
	if ref.Pinned() || f.TagTrust == nil {
		return false
	}
	repo := ref.Name.Context()
	ok, file := f.TagTrust.AcceptsTag(repo.RegistryStr(), repo.RepositoryStr())
	if ok {
		f.logger().Info("tag taken without a digest: its repository is trusted", "image", ref.String(), "policy", file)
	}
	return ok
}

func (f *Fetcher) registryOptions() oci.RegistryOptions {
	o := f.OCI.Registry
	o.InsecureHTTP, o.InsecureTLS = f.InsecureHTTP, f.InsecureTLS
	o.Keychain = f.OCI.Keychain
	o.Log = f.logger()
	return o
}

// downloadBlob downloads a layer into the download directory, where a
// broken download stays to be resumed, and moves it into the store once
// its digest checks out.
func (f *Fetcher) downloadBlob(ctx context.Context, reg *oci.Registry, l oci.Layer, board *progress.Board) error {
	if err := os.MkdirAll(f.DownloadDir, 0o700); err != nil {
		return fmt.Errorf("create download dir: %w", err)
	}
	partial := filepath.Join(f.DownloadDir, l.Digest.Hex+".blob")
	// Two fetches of images sharing a layer take turns on its download.
	lk, err := lock.ExclusiveLock(ctx, partial+".lock", lock.RegularFile)
	if err != nil {
		return fmt.Errorf("lock download of %s: %w", l.Digest, err)
	}
	defer func() { _ = lk.Close() }()
	if f.Store.OCIBlobs.Exists(l.Digest.String()) {
		return nil // the other fetch stored it
	}
	var bar io.Writer
	if f.Progress != nil {
		bar = board.Slot(f.Progress)
	}
	opts := download.Options{Progress: bar, Label: "layer " + l.Digest.Hex[:12], MaxSize: l.Size, Log: f.logger(), ContentAddressed: true, Hash: sha256.New}
	res, err := reg.FetchBlob(ctx, l.Digest, partial, opts)
	if err != nil {
		return err
	}
	err = f.Store.OCIBlobs.Adopt(ctx, partial, l.Digest.String(), l.Size, res.Sum)
	// Adopted, or refused and removed: either way the partial is done
	// with, and a bad one must not be resumed.
	download.Discard(partial)
	return err
}

// ociMeta is what storeOCI records besides the image.
type ociMeta struct {
	ref           oci.Reference
	source        string
	name, version string
	remote        *index.Remote
}

// storeOCI copies the blobs of im the store does not have yet (with
// fetchBlob, a few at a time), then records the image.
func (f *Fetcher) storeOCI(ctx context.Context, im *oci.Image, meta ociMeta, fetchBlob func(context.Context, oci.Layer) error) (*index.Image, error) {
	app, dropped, err := oci.Convert(im.ConfigFile, oci.App{Name: meta.name, Version: meta.version, Reference: meta.ref.String(), Digest: im.Digest})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", meta.ref, err)
	}
	for _, d := range dropped {
		f.logger().Warn("image config entry not carried over", "image", meta.ref.String(), "entry", d)
	}
	var compressed int64
	for _, l := range im.Layers {
		compressed += l.Size
	}
	if f.MaxSize > 0 && compressed > f.MaxSize {
		// The uncompressed size is known only when the layers are
		// rendered (and bounded there too); the compressed one bounds it
		// from below.
		return nil, errdefs.InvalidArgument("image %s: its layers are %s compressed, over the %s limit set by --max-image-size (raise it to fetch a larger image you trust)",
			meta.ref, progress.Bytes(compressed), progress.Bytes(f.MaxSize))
	}
	release, err := f.Store.HoldOCIBlobs(ctx)
	if err != nil {
		return nil, err
	}
	entry, added, err := f.commitOCI(ctx, im, meta, app, fetchBlob)
	release()
	if err != nil {
		f.discardOCIBlobs(ctx, meta.ref, added, err)
		return nil, fmt.Errorf("image %s: %w", meta.ref, err)
	}
	return entry, nil
}

// commitOCI stores the blobs of im the store does not have yet and records
// the image; the caller holds HoldOCIBlobs. It returns the blobs it found
// missing, which a failed fetch removes again. The config is stored last,
// once every layer is verified, so a bad layer never leaves it behind.
func (f *Fetcher) commitOCI(ctx context.Context, im *oci.Image, meta ociMeta, app *schema.ImageManifest, fetchBlob func(context.Context, oci.Layer) error) (*index.Image, []string, error) {
	var (
		todo  []oci.Layer
		added []string
	)
	seen := map[v1.Hash]bool{}
	for _, l := range im.Layers {
		if !seen[l.Digest] && !f.Store.OCIBlobs.Exists(l.Digest.String()) {
			todo = append(todo, l)
			added = append(added, l.Digest.String())
		}
		seen[l.Digest] = true
	}
	config := im.ConfigDigest.String()
	if !f.Store.OCIBlobs.Exists(config) {
		added = append(added, config)
	}
	f.logger().Debug("fetching layers", "image", meta.ref.String(), "layers", len(im.Layers), "new", len(todo))
	if err := forEachLimit(ctx, todo, parallelLayers, fetchBlob); err != nil {
		return nil, added, err
	}
	f.Timeline.Mark("layers-stored")
	if err := f.Store.OCIBlobs.Ingest(ctx, bytes.NewReader(im.Config), config, int64(len(im.Config))); err != nil {
		return nil, added, fmt.Errorf("store config: %w", err)
	}
	layers := make([]index.OCILayer, len(im.Layers))
	for i, l := range im.Layers {
		layers[i] = index.OCILayer{Digest: l.Digest.String(), DiffID: l.DiffID.String(), MediaType: string(l.MediaType), Size: l.Size}
	}
	entry, err := f.Store.ImportOCI(ctx, store.OCIImport{
		Manifest: im.Manifest,
		App:      app,
		OCI: &index.OCIImage{
			Reference: meta.ref.String(), Digest: im.Digest.String(), MediaType: string(im.MediaType),
			Config: config, Layers: layers,
		},
		Source: meta.source,
		Remote: meta.remote,
	})
	if err == nil {
		f.Timeline.Mark("image-recorded")
	}
	return entry, added, err
}

// discardOCIBlobs removes the blobs a refused fetch stored that no image
// uses (a bad blob must leave nothing in the store), once the fetch has
// released its hold: blobs another image or a concurrent fetch counts on
// stay. A fetch cancelled, killed or cut off by the network (err is
// errdefs.ErrUnavailable) keeps them instead, for the next attempt to find
// (Documentation/store.md, crash safety); so does a cleanup that fails,
// for image gc.
func (f *Fetcher) discardOCIBlobs(ctx context.Context, ref oci.Reference, added []string, err error) {
	if len(added) == 0 || ctx.Err() != nil || errors.Is(err, errdefs.ErrUnavailable) {
		return
	}
	if err := f.Store.RemoveUnusedOCIBlobs(ctx, added); err != nil {
		f.logger().Warn("blobs of the refused image left for image gc", "image", ref.String(), "error", err)
	}
}

// forEachLimit runs fn over items, at most limit at once, and returns the
// first error (cancelling the others).
func forEachLimit[T any](ctx context.Context, items []T, limit int, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, limit)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, it); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return context.Cause(ctx)
}

func (f *Fetcher) fetchLocal(ctx context.Context, ref oci.Reference) (*index.Image, error) {
	if f.PullPolicy == PullNever {
		return nil, errdefs.FailedPrecondition("image %s: the pull policy is never, so only images already in the store can be used", ref)
	}
	l, err := oci.OpenLocal(ref, f.platform())
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Close() }()
	pin := l.Image.IndexDigest
	if ref.Transport == oci.DockerArchive {
		pin = l.Image.ConfigDigest
	}
	if !ref.Pinned() && !f.InsecureImage {
		unpinned := ref
		unpinned.Ref = ""
		return nil, notPinned(ref, unpinned.String(), pin)
	}
	board := progress.NewBoard(f.Progress)
	fetchBlob := func(ctx context.Context, layer oci.Layer) error {
		rc, err := l.OpenBlob(ctx, layer.Digest)
		if err != nil {
			return err
		}
		defer func() { _ = rc.Close() }()
		var src io.Reader = rc
		if f.Progress != nil {
			bar := progress.New(board.Slot(f.Progress), "layer "+layer.Digest.Hex[:12], layer.Size)
			defer bar.Done()
			src = bar.Wrap(rc)
		}
		return f.Store.OCIBlobs.Ingest(ctx, src, layer.Digest.String(), layer.Size)
	}
	source := ref.String()
	if !ref.Pinned() {
		source += "@" + pin.String()
	}
	return f.storeOCI(ctx, l.Image, ociMeta{ref: ref, source: source, name: l.Name, version: l.Version}, fetchBlob)
}
