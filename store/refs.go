package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/store/blob"
	"github.com/nosecone/nscn/store/index"
	"github.com/nosecone/nscn/store/tree"
)

// References say which holders (pods, by UUID) hold which rendered trees
// and images. A holder of a tree also holds every image the tree was
// rendered from. Remove refuses an image that anyone holds, and GC skips
// what anyone holds. The store does not find the holders itself: pods are
// not its business, and the caller collects their references, under
// LockReferences, before it calls Remove or GC. The zero value holds
// nothing.
type References struct {
	trees, images map[string][]string
}

// HoldTree records that holder holds the tree with key.
func (r *References) HoldTree(holder, key string) { r.trees = hold(r.trees, key, holder) }

// HoldImage records that holder holds the image with this ID or key.
func (r *References) HoldImage(holder, id string) {
	r.images = hold(r.images, blob.KeyFromID(strings.ToLower(id)), holder)
}

func hold(m map[string][]string, key, holder string) map[string][]string {
	if m == nil {
		m = map[string][]string{}
	}
	if !slices.Contains(m[key], holder) {
		m[key] = append(m[key], holder)
	}
	return m
}

// TreeHolders returns who holds the tree with key, sorted.
func (r References) TreeHolders(key string) []string {
	return sorted(r.trees[key])
}

// imageHolders returns who holds the image with key, directly or through
// one of trees rendered from it, sorted.
func (r References) imageHolders(key string, trees []tree.Tree) []string {
	out := slices.Clone(r.images[key])
	for _, t := range trees {
		if len(r.trees[t.Key]) == 0 || !treeUses(t.ImageIDs, map[string]bool{key: true}) {
			continue
		}
		for _, h := range r.trees[t.Key] {
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return sorted(out)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// InUseError is Remove's refusal of an image that pods hold. It is an
// errdefs.ErrFailedPrecondition.
type InUseError struct {
	Key, Name string
	// Holders are the UUIDs of the pods that hold the image, sorted.
	Holders []string
}

func (e *InUseError) Error() string {
	what := "pod"
	if len(e.Holders) > 1 {
		what = "pods"
	}
	return fmt.Sprintf("image %s (%s) is in use by %s %s", e.Key, e.Name, what, strings.Join(e.Holders, ", "))
}

// Is makes an InUseError an errdefs.ErrFailedPrecondition.
func (e *InUseError) Is(target error) bool { return target == errdefs.ErrFailedPrecondition }

// LockReferences takes the store's references lock (cas/refs.lock),
// exclusive or shared, and returns the function that releases it. Whoever
// starts to hold trees and images (prepare, from its renders until the
// pod directory records the tree keys) holds it shared; whoever collects
// the references and then removes what no one holds (image rm, image gc)
// holds it exclusive, so that no pod starts to hold what is being removed.
// It waits for the lock until ctx ends.
func (s *Store) LockReferences(ctx context.Context, exclusive bool) (unlock func(), err error) {
	take := lock.SharedLock
	if exclusive {
		take = lock.ExclusiveLock
	}
	l, err := take(ctx, filepath.Join(s.Dir, "refs.lock"), lock.RegularFile)
	if err != nil {
		return nil, fmt.Errorf("lock the store's references: %w", err)
	}
	return func() { _ = l.Close() }, nil
}

// RestoreTree returns the complete tree with key, rendering it again when
// it is gone (deleted by hand, say) from a stored image named name whose
// render has that key: a tree is a pure function of the images it is
// rendered from, and its key names them, so the new render is the tree
// that was lost. It is NotFound when no stored image of that name renders
// the key (the image was removed too, or its dependencies now resolve to
// other images). The key does not name the tree hash's algorithm, so a
// tree restored by nscn, which does not link BLAKE3, is hashed with
// SHA-256 (tree.Store.RenderAnyHash).
func (s *Store) RestoreTree(ctx context.Context, key, name string) (*tree.Tree, error) {
	t, err := s.Trees.Get(ctx, key)
	if !errors.Is(err, errdefs.ErrNotFound) {
		return t, err
	}
	var candidates []*index.Image
	err = s.Index.View(ctx, func(tx *index.Tx) error {
		var err error
		candidates, err = tx.FindByName(name, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, im := range candidates {
		layers, err := s.Trees.Plan(ctx, im.ID)
		if err != nil || tree.Key(layers) != key {
			continue
		}
		// The commands that restore a tree (stop, enter, gc, app
		// start, run-prepared) hold a pod and cannot hand themselves
		// over to nscn-fetch: without BLAKE3, the tree is hashed with
		// SHA-256.
		return s.Trees.RenderAnyHash(ctx, im.ID)
	}
	return nil, errdefs.NotFound("tree %s is gone, and no stored image named %s renders it again", key, name)
}
