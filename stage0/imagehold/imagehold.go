// Package imagehold finds what the pods of a data directory hold in the
// image store, under the store's references lock, for the commands that
// remove images (image rm, image gc, the CRI server's RemoveImage): an
// image or tree a pod holds must not go from under it.
package imagehold

import (
	"context"

	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/store"
)

// Lock takes the store's references lock exclusive, so that no pod starts
// to hold anything meanwhile, and collects what the pods of the data
// directory hold in the store, in any state, from what stage0 recorded in
// each pod directory (pod.ListHoldings). The caller removes from the
// store under the lock and then calls unlock.
func Lock(ctx context.Context, s *store.Store, dataDir string) (refs store.References, unlock func(), err error) {
	if unlock, err = s.LockReferences(ctx, true); err != nil {
		return refs, nil, err
	}
	hs, err := pod.ListHoldings(ctx, dataDir)
	if err != nil {
		unlock()
		return refs, nil, err
	}
	for _, h := range hs {
		for _, k := range h.Trees {
			refs.HoldTree(h.UUID, k)
		}
		for _, id := range h.Images {
			refs.HoldImage(h.UUID, id)
		}
	}
	return refs, unlock, nil
}
