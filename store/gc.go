package store

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/store/blob"
	"github.com/nosecone/nscn/store/index"
)

// lockStore takes the store-wide lock: shared while an import moves a blob
// into place and records it, exclusive while GC looks for orphan blobs, so
// GC never mistakes a blob committed a moment ago for an orphan.
func (s *Store) lockStore(ctx context.Context, exclusive bool) (unlock func(), err error) {
	take := lock.SharedLock
	if exclusive {
		take = lock.ExclusiveLock
	}
	l, err := take(ctx, filepath.Join(s.Dir, "store.lock"), lock.RegularFile)
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	return func() { _ = l.Close() }, nil
}

// GCOptions say what image GC may remove.
type GCOptions struct {
	// GracePeriod protects images and trees used more recently than this.
	GracePeriod time.Duration
	// Refs are the trees and images pods hold; they are never removed.
	// The caller holds LockReferences exclusive from collecting them
	// until GC returns.
	Refs References
	// DryRun reports what would be removed without removing it.
	DryRun bool
}

// GCReport lists what GC removed (or would remove).
type GCReport struct {
	Trees       []string `json:"trees"`
	Images      []string `json:"images"`
	OrphanBlobs []string `json:"orphanBlobs"`
}

// GC removes rendered trees and images that no pod uses and that were not
// used within the grace period, blobs without an index entry, and what
// crashed imports and renders left behind.
func (s *Store) GC(ctx context.Context, opts GCOptions) (*GCReport, error) {
	rep := &GCReport{}
	cutoff := time.Now().Add(-opts.GracePeriod)

	trees, err := s.Trees.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range trees {
		if len(opts.Refs.TreeHolders(t.Key)) > 0 || t.LastUsed.After(cutoff) {
			continue
		}
		rep.Trees = append(rep.Trees, t.Key)
		if !opts.DryRun {
			if err := s.Trees.Remove(ctx, t.Key); err != nil {
				return rep, err
			}
		}
	}

	images, err := s.Images(ctx)
	if err != nil {
		return rep, err
	}
	for _, im := range images {
		if len(opts.Refs.imageHolders(im.Key, trees)) > 0 || im.LastUsed.After(cutoff) {
			continue
		}
		rep.Images = append(rep.Images, im.Key)
		if !opts.DryRun {
			if _, err := s.Remove(ctx, im.Key, opts.Refs); err != nil {
				return rep, err
			}
		}
	}

	if opts.DryRun {
		return rep, nil
	}
	unlock, err := s.lockStore(ctx, true)
	if err != nil {
		return rep, err
	}
	defer unlock()
	known := map[string]bool{}
	err = s.Index.View(ctx, func(tx *index.Tx) error {
		all, err := tx.Images()
		for _, im := range all {
			known[im.Key] = true
		}
		return err
	})
	if err != nil {
		return rep, err
	}
	keys, err := s.Blobs.Keys(ctx)
	if err != nil {
		return rep, err
	}
	for _, k := range keys {
		if known[k] {
			continue
		}
		rep.OrphanBlobs = append(rep.OrphanBlobs, k)
		if err := s.Blobs.Remove(ctx, k); err != nil {
			return rep, err
		}
	}
	// OCI blobs no image names: left by an image rm that crashed, or by a
	// fetch that failed after storing some layers (a fetch in progress
	// holds the store lock shared, so none is running now).
	used, err := s.usedOCIBlobs(ctx)
	if err != nil {
		return rep, err
	}
	digests, err := s.OCIBlobs.Digests(ctx)
	if err != nil {
		return rep, err
	}
	for _, d := range digests {
		if used[d] {
			continue
		}
		rep.OrphanBlobs = append(rep.OrphanBlobs, d)
		if err := s.OCIBlobs.Remove(ctx, d); err != nil {
			return rep, err
		}
	}
	if err := s.Blobs.Clean(ctx); err != nil {
		return rep, err
	}
	if err := s.Trees.Clean(ctx); err != nil {
		return rep, err
	}
	return rep, nil
}

// VerifyResult is the outcome of checking one blob or tree.
type VerifyResult struct {
	Kind string `json:"kind"` // "image" or "tree"
	Key  string `json:"key"`
	Name string `json:"name,omitempty"`
	Err  error  `json:"-"`
	OK   bool   `json:"ok"`
	// Problem is Err's message, for JSON.
	Problem string `json:"problem,omitempty"`
}

// Verify recomputes the hash of every image blob (or the named ones) and of
// every rendered tree, and reports each.
func (s *Store) Verify(ctx context.Context, refs []string) ([]VerifyResult, error) {
	var images []*index.Image
	if len(refs) == 0 {
		all, err := s.Images(ctx)
		if err != nil {
			return nil, err
		}
		images = all
	} else {
		for _, r := range refs {
			im, err := s.Get(ctx, r)
			if err != nil {
				return nil, err
			}
			images = append(images, im)
		}
	}
	var out []VerifyResult
	wanted := map[string]bool{}
	for _, im := range images {
		wanted[im.Key] = true
		err := s.Blobs.Verify(ctx, im.Key)
		for _, d := range im.OCI.Blobs() {
			if err != nil {
				break
			}
			err = s.OCIBlobs.Verify(ctx, d)
		}
		out = append(out, result("image", im.Key, im.Name, err))
	}
	trees, err := s.Trees.List(ctx)
	if err != nil {
		return out, err
	}
	for _, t := range trees {
		if len(refs) > 0 && !treeUses(t.ImageIDs, wanted) {
			continue
		}
		out = append(out, result("tree", t.Key, "", s.Trees.Verify(ctx, t.Key)))
	}
	return out, nil
}

func treeUses(ids []string, keys map[string]bool) bool {
	for _, id := range ids {
		if keys[blob.KeyFromID(id)] {
			return true
		}
	}
	return false
}

func result(kind, key, name string, err error) VerifyResult {
	r := VerifyResult{Kind: kind, Key: key, Name: name, Err: err, OK: err == nil}
	if err != nil {
		r.Problem = err.Error()
	}
	return r
}
