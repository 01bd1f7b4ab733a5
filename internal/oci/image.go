package oci

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

// maxManifestSize bounds manifests, indexes and configs, read whole into
// memory: real ones are a few KiB.
const maxManifestSize = 8 << 20

// Image is one platform's image, resolved: its manifest and config, read
// and checked against their digests, and the layers to copy.
type Image struct {
	Manifest     []byte          // as served; Digest is its sha256
	MediaType    types.MediaType // of the manifest
	Digest       v1.Hash
	Config       []byte // as served; ConfigDigest is its sha256
	ConfigDigest v1.Hash
	ConfigFile   *v1.ConfigFile
	Layers       []Layer
	// IndexDigest is the digest of the index the image was picked from,
	// or the manifest's when the reference named a manifest: what a tag
	// names, and what pins it.
	IndexDigest v1.Hash
}

// Layer is one layer blob to copy, bottom first.
type Layer struct {
	Digest    v1.Hash // of the blob as stored in the source
	DiffID    v1.Hash // of its uncompressed tar, from the config
	MediaType types.MediaType
	Size      int64
}

// Platform is the os and architecture to pick from an index.
type Platform struct {
	OS, Arch, Variant string
}

// ParsePlatform reads --os and --arch values: arch may carry a variant
// (arm/v7, arm64/v8). Empty values default to linux and amd64.
func ParsePlatform(osName, arch string) (Platform, error) {
	p := Platform{OS: osName, Arch: arch}
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Arch == "" {
		p.Arch = "amd64"
	}
	var hasVariant bool
	p.Arch, p.Variant, hasVariant = strings.Cut(p.Arch, "/")
	if p.Arch == "" || (hasVariant && p.Variant == "") {
		return Platform{}, errdefs.InvalidArgument("platform --os=%q --arch=%q: want ARCH or ARCH/VARIANT (--arch=arm64, --arch=arm/v7)", osName, arch)
	}
	for _, s := range []string{p.OS, p.Arch, p.Variant} {
		if strings.ContainsFunc(s, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' }) {
			return Platform{}, errdefs.InvalidArgument("platform --os=%q --arch=%q: only lower-case letters, digits and _ are allowed (--arch=arm64, --arch=arm/v7)", osName, arch)
		}
	}
	return p, nil
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// matches reports whether an index entry's platform is p. Without a
// variant asked for, any variant matches.
func (p Platform) matches(q *v1.Platform) bool {
	if q == nil {
		return false
	}
	return q.OS == p.OS && q.Architecture == p.Arch && (p.Variant == "" || q.Variant == p.Variant)
}

// pick returns the descriptor of the image for p in an index. Several
// matching entries: the first, as docker does.
func pick(idx *v1.IndexManifest, p Platform, what string) (v1.Descriptor, error) {
	var have []string
	for _, d := range idx.Manifests {
		if !d.MediaType.IsImage() {
			continue
		}
		if p.matches(d.Platform) {
			return d, nil
		}
		if d.Platform != nil {
			have = append(have, d.Platform.String())
		}
	}
	return v1.Descriptor{}, errdefs.NotFound("%s has no image for %s (it has %s); choose one with --os and --arch", what, p, strings.Join(have, ", "))
}

// digestOf returns the sha256 digest of b.
func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// checkDigest fails when b does not hash to want.
func checkDigest(b []byte, want v1.Hash, what string) error {
	if want.Algorithm != "sha256" {
		return errdefs.InvalidArgument("%s: digest %s is not sha256", what, want)
	}
	if got := digestOf(b); got != want {
		return errdefs.InvalidArgument("%s does not match its digest %s: the bytes received hash to %s", what, want, got)
	}
	return nil
}

// readAll reads a manifest-sized object.
func readAll(r io.Reader, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if len(b) > maxManifestSize {
		return nil, errdefs.InvalidArgument("%s is over the %d MiB limit", what, maxManifestSize>>20)
	}
	return b, nil
}

// newImage parses a manifest (already checked against digest) and its
// config (checked here against the manifest), and lists the layers.
func newImage(raw []byte, digest v1.Hash, mediaType types.MediaType, config func(v1.Descriptor) ([]byte, error)) (*Image, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, errdefs.InvalidArgument("image manifest %s: %v", digest, err)
	}
	if mediaType == "" {
		mediaType = m.MediaType
	}
	switch mediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2, "":
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return nil, errdefs.Newf(errdefs.ErrNotImplemented, "image manifest %s is Docker schema 1, which nscn does not read (push the image again with a current client)", digest)
	default:
		return nil, errdefs.InvalidArgument("image manifest %s has media type %q, not an image manifest", digest, mediaType)
	}
	cfg, err := config(m.Config)
	if err != nil {
		return nil, err
	}
	if err := checkDigest(cfg, m.Config.Digest, "image config"); err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(cfg))
	if err != nil {
		return nil, errdefs.InvalidArgument("image config %s: %v", m.Config.Digest, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, errdefs.InvalidArgument("image %s: the manifest lists %d layers, the config %d", digest, len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	im := &Image{Manifest: raw, MediaType: mediaType, Digest: digest, Config: cfg, ConfigDigest: m.Config.Digest, ConfigFile: cf, IndexDigest: digest}
	for i, l := range m.Layers {
		if l.Digest.Algorithm != "sha256" || cf.RootFS.DiffIDs[i].Algorithm != "sha256" {
			return nil, errdefs.InvalidArgument("image %s: layer %d has a digest that is not sha256", digest, i+1)
		}
		if l.Size < 0 {
			return nil, errdefs.InvalidArgument("image %s: layer %d has a negative size", digest, i+1)
		}
		if len(l.URLs) > 0 && !l.MediaType.IsDistributable() {
			return nil, errdefs.Newf(errdefs.ErrNotImplemented, "image %s: layer %d is a foreign layer, which nscn does not fetch", digest, i+1)
		}
		im.Layers = append(im.Layers, Layer{Digest: l.Digest, DiffID: cf.RootFS.DiffIDs[i], MediaType: l.MediaType, Size: l.Size})
	}
	return im, nil
}

// mediaTypeOf reads the mediaType field of a manifest or index.
func mediaTypeOf(raw []byte) types.MediaType {
	var v struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	_ = json.Unmarshal(raw, &v)
	if v.MediaType == "" && v.Manifests != nil {
		return types.OCIImageIndex
	}
	return v.MediaType
}
