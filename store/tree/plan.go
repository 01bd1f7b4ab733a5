package tree

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Source is what the tree store needs from the image store.
type Source interface {
	// OpenImage returns the uncompressed tar of a stored image by full ID
	// ("sha512-..." as stored).
	OpenImage(ctx context.Context, id string) (io.ReadCloser, error)
	// Manifest returns the stored image's manifest.
	Manifest(ctx context.Context, id string) (*schema.ImageManifest, error)
	// ResolveDependency returns the ID of the stored image satisfying dep
	// (by dep.ImageID when set, else by name and labels);
	// errdefs.ErrNotFound if none.
	ResolveDependency(ctx context.Context, dep types.Dependency) (string, error)
	// OCILayers returns the filesystem layers of an image fetched from an
	// OCI or Docker source, bottom first, and nil for an ACI (whose
	// filesystem is the rootfs of its OpenImage tar).
	OCILayers(ctx context.Context, id string) ([]OCILayer, error)
}

// OCILayer is one layer of an OCI image: OpenBlob returns its blob as
// stored (compressed or not), whose uncompressed tar must hash to DiffID.
type OCILayer struct {
	Digest   string
	DiffID   string
	OpenBlob func(ctx context.Context) (io.ReadCloser, error)
}

// Limits on a dependency graph. Real images have a handful of layers;
// the limits stop a hostile graph (deep chains, or a diamond lattice whose
// depth-first expansion doubles at every level) before it costs anything.
const (
	maxDepth  = 64
	maxLayers = 256
)

// KeyPrefix starts every tree key.
const KeyPrefix = "deps-sha512-"

// keyHexLen is how many hex digits of the sha512 a key keeps, as image
// keys do.
const keyHexLen = 64

// Layer is one rootfs extraction of a render: the image whose rootfs is
// extracted, and the whitelists that filter it.
type Layer struct {
	ImageID string // full ID of the image whose rootfs this layer extracts
	Name    string // its name, for messages
	// Chain is the path of image IDs that led to this layer, from the top
	// image down to ImageID (inclusive). An image that is a dependency
	// through two paths gives two layers with different chains.
	Chain []string
	// Whitelists are the non-empty pathWhitelists of the images on Chain,
	// top image first. A path of this layer is extracted only when all of
	// them admit it.
	Whitelists []*Whitelist
}

// Admits reports whether the rootfs path p ("/etc/passwd") of this layer
// belongs in the rendered tree.
func (l Layer) Admits(p string) bool {
	for _, w := range l.Whitelists {
		if !w.Admits(p) {
			return false
		}
	}
	return true
}

// Whitelist is an image's pathWhitelist prepared for matching.
type Whitelist struct {
	Image   string              // ID of the image whose manifest holds it
	paths   map[string]struct{} // the listed paths, cleaned
	parents map[string]struct{} // every directory above a listed path
}

// newWhitelist returns nil for an empty list, which the spec defines as no
// whitelist at all.
func newWhitelist(image string, entries []string) *Whitelist {
	if len(entries) == 0 {
		return nil
	}
	w := &Whitelist{Image: image, paths: map[string]struct{}{}, parents: map[string]struct{}{}}
	for _, e := range entries {
		// "/etc/systemd/system/" names the directory itself.
		p := path.Clean("/" + e)
		w.paths[p] = struct{}{}
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			w.parents[d] = struct{}{}
		}
	}
	return w
}

// Admits reports whether the clean absolute path p is listed, or is a
// directory above a listed path (which must exist for the listed path to).
// The root always is.
func (w *Whitelist) Admits(p string) bool {
	if p == "/" {
		return true
	}
	if _, ok := w.paths[p]; ok {
		return true
	}
	_, ok := w.parents[p]
	return ok
}

// Paths returns the listed paths, cleaned and sorted.
func (w *Whitelist) Paths() []string {
	out := make([]string, 0, len(w.paths))
	for p := range w.paths {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Key returns the key of the tree rendered from layers: KeyPrefix and the
// first 64 hex digits of the sha512 of the ordered image IDs, one per line.
func Key(layers []Layer) string {
	h := sha512.New()
	for _, l := range layers {
		h.Write([]byte(l.ImageID))
		h.Write([]byte{'\n'})
	}
	return KeyPrefix + hex.EncodeToString(h.Sum(nil))[:keyHexLen]
}

// ValidKey reports whether k has the shape of a tree key. Keys become path
// names, so anything else is refused before it touches the filesystem.
func ValidKey(k string) bool {
	hx, ok := strings.CutPrefix(k, KeyPrefix)
	if !ok || len(hx) != keyHexLen {
		return false
	}
	for _, c := range hx {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Plan returns the layers that render imageID, in extraction order: for
// each dependency in manifest order, its own layers (depth-first), then
// the image itself. A dependency cycle is an InvalidArgument error naming
// the cycle; a dependency that no stored image satisfies is a NotFound
// error naming it.
func (s *Store) Plan(ctx context.Context, imageID string) ([]Layer, error) {
	p := &planner{
		ctx:       ctx,
		src:       s.src,
		manifests: map[string]*schema.ImageManifest{},
		deps:      map[string][]string{},
	}
	if err := p.visit(imageID, nil, nil); err != nil {
		return nil, fmt.Errorf("plan tree of image %s: %w", imageID, err)
	}
	return p.layers, nil
}

// planner holds the state of one Plan. Manifests and resolved
// dependencies are memoised: an image reached through several paths is
// looked up once.
type planner struct {
	ctx       context.Context
	src       Source
	manifests map[string]*schema.ImageManifest
	deps      map[string][]string
	layers    []Layer
}

func (p *planner) visit(id string, chain []string, wls []*Whitelist) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	if i := slices.Index(chain, id); i >= 0 {
		return errdefs.InvalidArgument("dependency cycle: %s", p.describe(append(slices.Clone(chain[i:]), id)))
	}
	if len(chain) >= maxDepth {
		return errdefs.InvalidArgument("dependency chain deeper than %d: %s", maxDepth, p.describe(chain))
	}
	m, err := p.manifest(id)
	if err != nil {
		return err
	}
	chain = slices.Concat(chain, []string{id})
	if w := newWhitelist(id, m.PathWhitelist); w != nil {
		wls = slices.Concat(wls, []*Whitelist{w})
	}
	deps, err := p.resolve(id, m)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if err := p.visit(d, chain, wls); err != nil {
			return err
		}
	}
	if len(p.layers) >= maxLayers {
		return errdefs.InvalidArgument("more than %d layers to render", maxLayers)
	}
	p.layers = append(p.layers, Layer{ImageID: id, Name: m.Name.String(), Chain: chain, Whitelists: wls})
	return nil
}

func (p *planner) manifest(id string) (*schema.ImageManifest, error) {
	if m, ok := p.manifests[id]; ok {
		return m, nil
	}
	m, err := p.src.Manifest(p.ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read manifest of image %s: %w", id, err)
	}
	p.manifests[id] = m
	return m, nil
}

func (p *planner) resolve(id string, m *schema.ImageManifest) ([]string, error) {
	if ids, ok := p.deps[id]; ok {
		return ids, nil
	}
	ids := make([]string, 0, len(m.Dependencies))
	for _, dep := range m.Dependencies {
		got, err := p.src.ResolveDependency(p.ctx, dep)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return nil, fmt.Errorf("dependency %s of image %s is not in the store: %w", describeDep(dep), m.Name, err)
			}
			return nil, fmt.Errorf("resolve dependency %s of image %s: %w", describeDep(dep), m.Name, err)
		}
		if dep.ImageID != nil && !dep.ImageID.Empty() && !sameID(got, dep.ImageID.String()) {
			return nil, errdefs.InvalidArgument("dependency %s of image %s resolved to image %s", describeDep(dep), m.Name, got)
		}
		ids = append(ids, got)
	}
	p.deps[id] = ids
	return ids, nil
}

// sameID compares image IDs that may be shortened (keys, or a dependency's
// imageID written with fewer digits).
func sameID(a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

func describeDep(dep types.Dependency) string {
	var b strings.Builder
	b.WriteString(dep.ImageName.String())
	for _, l := range dep.Labels {
		fmt.Fprintf(&b, ",%s=%s", l.Name, l.Value)
	}
	if dep.ImageID != nil && !dep.ImageID.Empty() {
		fmt.Fprintf(&b, " (%s)", dep.ImageID)
	}
	return b.String()
}

// describe names a chain of image IDs for an error message, by image name
// when its manifest was read.
func (p *planner) describe(ids []string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		short := id
		if len(short) > len("sha512-")+12 {
			short = short[:len("sha512-")+12]
		}
		if m, ok := p.manifests[id]; ok {
			parts[i] = m.Name.String() + " (" + short + ")"
		} else {
			parts[i] = short
		}
	}
	return strings.Join(parts, " -> ")
}
