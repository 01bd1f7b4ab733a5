package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/store/index"
)

// OCIImport is an OCI or Docker image to record, once its blobs are in
// OCIBlobs.
type OCIImport struct {
	// Manifest is the image manifest as served (OCI or Docker schema 2):
	// it is stored as the image's blob, so the image ID is its sha512.
	Manifest []byte
	// App is the appc manifest nscn runs the image with.
	App *schema.ImageManifest
	// OCI lists the config and layers, which must be in OCIBlobs.
	OCI *index.OCIImage
	// Source and Remote are as for ImportOptions.
	Source string
	Remote *index.Remote
}

// HoldOCIBlobs keeps image rm and image gc from removing OCI blobs until
// release is called: a fetch holds it from before it looks for the layers
// it already has until its image is recorded, so that a layer it found,
// or has just stored, cannot go before an index entry names it. It is the
// store lock, shared.
func (s *Store) HoldOCIBlobs(ctx context.Context) (release func(), err error) {
	return s.lockStore(ctx, false)
}

// ImportOCI records an OCI image whose blobs are already stored: its
// manifest becomes a blob, and its entry names its layers. The caller holds
// HoldOCIBlobs. On any error nothing is recorded.
func (s *Store) ImportOCI(ctx context.Context, imp OCIImport) (*index.Image, error) {
	raw, err := json.Marshal(imp.App)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("encode image manifest: %w", err))
	}
	m, err := aci.ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	for _, d := range imp.OCI.Blobs() {
		if !s.OCIBlobs.Exists(d) {
			return nil, errdefs.FailedPrecondition("image %s: blob %s is not in the store", imp.OCI.Reference, d)
		}
	}
	w, err := s.Blobs.NewWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	if _, err := w.Write(imp.Manifest); err != nil {
		return nil, fmt.Errorf("write image manifest: %w", err)
	}
	info, err := w.Commit(ctx)
	if err != nil {
		return nil, err
	}
	var size int64
	for _, l := range imp.OCI.Layers {
		size += l.Size
	}
	now := time.Now().UTC()
	im := &index.Image{
		Key:        info.Key,
		ID:         info.ID,
		Name:       m.Name.String(),
		Labels:     labelMap(m.Labels),
		ImportTime: now,
		LastUsed:   now,
		Size:       size,
		Manifest:   raw,
		Source:     imp.Source,
		OCI:        imp.OCI,
	}
	if err := s.record(ctx, im, imp.Remote); err != nil {
		return nil, err
	}
	return im, nil
}

// FindOCI returns the stored image whose manifest has the digest, nil when
// there is none.
func (s *Store) FindOCI(ctx context.Context, digest string) (*index.Image, error) {
	var found *index.Image
	err := s.Index.View(ctx, func(tx *index.Tx) error {
		all, err := tx.Images()
		for _, im := range all {
			if im.OCI != nil && im.OCI.Digest == digest {
				found = im
			}
		}
		return err
	})
	s.remember(found)
	return found, err
}

// usedOCIBlobs returns the OCI blobs that index entries name.
func (s *Store) usedOCIBlobs(ctx context.Context) (map[string]bool, error) {
	used := map[string]bool{}
	err := s.Index.View(ctx, func(tx *index.Tx) error {
		all, err := tx.Images()
		for _, im := range all {
			for _, d := range im.OCI.Blobs() {
				used[d] = true
			}
		}
		return err
	})
	return used, err
}

// RemoveUnusedOCIBlobs removes those of digests that no image uses any
// more, under the store lock held exclusively: image rm, and a fetch that
// failed after it released HoldOCIBlobs. Every other fetch holds that lock
// shared from before it looks for the blobs it already has until its entry
// is committed, so no blob a fetch counts on is removed.
func (s *Store) RemoveUnusedOCIBlobs(ctx context.Context, digests []string) error {
	unlock, err := s.lockStore(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	used, err := s.usedOCIBlobs(ctx)
	if err != nil {
		return err
	}
	for _, d := range digests {
		if !used[d] {
			if err := s.OCIBlobs.Remove(ctx, d); err != nil {
				return err
			}
		}
	}
	return nil
}
