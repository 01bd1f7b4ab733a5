package oci

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

// refNameAnnotation names an image in an OCI layout's index.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Local is an image layout or archive the user named, opened.
type Local struct {
	files files
	// Image is the image picked from it.
	Image *Image
	// Name and Version are the appc name and version label the image gets:
	// from a docker archive's repo tag, else from the file name and ref.
	Name, Version string
	// blobPath maps a layer digest to its file (docker archives, whose
	// layers are named by path, not digest).
	blobPath map[v1.Hash]string
}

// files is a directory or a tar archive read as one.
type files interface {
	open(name string) (io.ReadCloser, error)
	Close() error
}

// OpenLocal opens the layout or archive of ref and picks its image (by
// ref, by digest, or the only one; from an index, the platform p).
func OpenLocal(ref Reference, p Platform) (_ *Local, err error) {
	var fsys files
	switch ref.Transport {
	case Layout:
		st, err := os.Stat(ref.Path)
		if err != nil {
			return nil, notFound(ref, err)
		}
		if !st.IsDir() {
			return nil, errdefs.InvalidArgument("%s: %s is not a directory (an OCI image layout)", ref, ref.Path)
		}
		fsys = dirFiles(ref.Path)
	case OCIArchive, DockerArchive:
		t, err := openTar(ref.Path)
		if err != nil {
			return nil, notFound(ref, err)
		}
		fsys = t
	default:
		return nil, errdefs.InvalidArgument("%s is not a local image", ref)
	}
	defer func() {
		if err != nil {
			_ = fsys.Close()
		}
	}()
	l := &Local{files: fsys}
	if ref.Transport == DockerArchive {
		err = l.readDockerArchive(ref)
	} else {
		err = l.readLayout(ref, p)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return l, nil
}

func notFound(ref Reference, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("%s: %s does not exist", ref, ref.Path)
	}
	return fmt.Errorf("%s: %w", ref, err)
}

// Close releases the archive.
func (l *Local) Close() error { return l.files.Close() }

// OpenBlob returns a layer blob as the source holds it; the store checks
// its digest while it copies it.
func (l *Local) OpenBlob(_ context.Context, d v1.Hash) (io.ReadCloser, error) {
	if p, ok := l.blobPath[d]; ok {
		return l.files.open(p)
	}
	return l.files.open(blobName(d))
}

func blobName(d v1.Hash) string { return path.Join("blobs", d.Algorithm, d.Hex) }

// readSmall reads a manifest-sized file of the source.
func (l *Local) readSmall(name string) ([]byte, error) {
	rc, err := l.files.open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	return readAll(rc, name)
}

// readBlob reads a manifest-sized blob and checks its digest.
func (l *Local) readBlob(d v1.Hash, what string) ([]byte, error) {
	if d.Algorithm != "sha256" {
		return nil, errdefs.InvalidArgument("%s: digest %s is not sha256", what, d)
	}
	b, err := l.readSmall(blobName(d))
	if err != nil {
		return nil, err
	}
	return b, checkDigest(b, d, what)
}

func (l *Local) readLayout(ref Reference, p Platform) error {
	raw, err := l.readSmall("index.json")
	if err != nil {
		return err
	}
	idx, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
	if err != nil {
		return errdefs.InvalidArgument("index.json: %v", err)
	}
	var desc v1.Descriptor
	switch {
	case ref.Pinned():
		desc = v1.Descriptor{Digest: ref.Digest}
	case ref.Ref != "":
		var found bool
		for _, d := range idx.Manifests {
			if d.Annotations[refNameAnnotation] == ref.Ref {
				desc, found = d, true
				break
			}
		}
		if !found {
			return errdefs.NotFound("no image named %q in the layout (it has %s)", ref.Ref, refNames(idx))
		}
	case len(idx.Manifests) == 1:
		desc = idx.Manifests[0]
	default:
		return errdefs.InvalidArgument("the layout holds %d images (%s): name one as oci:DIR:REF", len(idx.Manifests), refNames(idx))
	}
	top, err := l.readBlob(desc.Digest, "manifest "+desc.Digest.String())
	if err != nil {
		return err
	}
	raw, mt := top, mediaTypeOf(top)
	if mt.IsIndex() {
		sub, err := v1.ParseIndexManifest(strings.NewReader(string(top)))
		if err != nil {
			return errdefs.InvalidArgument("index %s: %v", desc.Digest, err)
		}
		d, err := pick(sub, p, "image index "+desc.Digest.String())
		if err != nil {
			return err
		}
		if raw, err = l.readBlob(d.Digest, "manifest "+d.Digest.String()); err != nil {
			return err
		}
		mt = mediaTypeOf(raw)
	}
	im, err := newImage(raw, digestOf(raw), mt, func(cd v1.Descriptor) ([]byte, error) {
		return l.readBlob(cd.Digest, "image config")
	})
	if err != nil {
		return err
	}
	im.IndexDigest = digestOf(top)
	l.Image = im
	l.Name = ImageName(strings.TrimSuffix(filepath.Base(filepath.Clean(ref.Path)), ".tar"))
	l.Version = ref.Ref
	if l.Version == "" {
		l.Version = desc.Annotations[refNameAnnotation]
	}
	return nil
}

func refNames(idx *v1.IndexManifest) string {
	var names []string
	for _, d := range idx.Manifests {
		if n := d.Annotations[refNameAnnotation]; n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "no reference names"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// dockerManifestEntry is one image of a docker save archive's
// manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// readDockerArchive reads `docker save` output. Its manifest.json names
// files, not digests, and no registry manifest comes with it: nscn writes
// an OCI manifest for the image from what the archive holds (config and
// layer files as they are, named by their sha256), and that is the image's
// manifest from then on. What pins such an image is the config's digest,
// docker's image ID.
func (l *Local) readDockerArchive(ref Reference) error {
	raw, err := l.readSmall("manifest.json")
	if err != nil {
		return err
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return errdefs.InvalidArgument("manifest.json: %v", err)
	}
	configs := make([][]byte, len(entries))
	pickEntry := -1
	for i, e := range entries {
		if configs[i], err = l.readSmall(cleanName(e.Config)); err != nil {
			return err
		}
		switch {
		case ref.Pinned():
			if digestOf(configs[i]) == ref.Digest {
				pickEntry = i
			}
		case ref.Ref != "":
			for _, t := range e.RepoTags {
				if sameTag(t, ref.Ref) {
					pickEntry = i
				}
			}
		}
	}
	switch {
	case pickEntry < 0 && ref.Pinned():
		return errdefs.NotFound("no image with config %s in the archive", ref.Digest)
	case pickEntry < 0 && ref.Ref != "":
		return errdefs.NotFound("no image tagged %q in the archive", ref.Ref)
	case pickEntry < 0 && len(entries) == 1:
		pickEntry = 0
	case pickEntry < 0:
		return errdefs.InvalidArgument("the archive holds %d images: name one as docker-archive:FILE:REPO:TAG", len(entries))
	}
	e, cfg := entries[pickEntry], configs[pickEntry]
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: digestOf(cfg), Size: int64(len(cfg))},
	}
	l.blobPath = map[v1.Hash]string{m.Config.Digest: cleanName(e.Config)}
	for _, lp := range e.Layers {
		d, size, mt, err := l.hashFile(cleanName(lp))
		if err != nil {
			return err
		}
		l.blobPath[d] = cleanName(lp)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt, Digest: d, Size: size})
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	im, err := newImage(mb, digestOf(mb), m.MediaType, func(v1.Descriptor) ([]byte, error) { return cfg, nil })
	if err != nil {
		return err
	}
	l.Image = im
	l.Name = ImageName(strings.TrimSuffix(filepath.Base(ref.Path), ".tar"))
	if len(e.RepoTags) > 0 {
		if t, err := name.NewTag(e.RepoTags[0]); err == nil {
			l.Name, l.Version = ImageName(t.Context().Name()), t.TagStr()
		}
	}
	return nil
}

// sameTag compares repo tags the way docker resolves them
// ("busybox:latest" is index.docker.io/library/busybox:latest).
func sameTag(a, b string) bool {
	ta, err1 := name.NewTag(a)
	tb, err2 := name.NewTag(b)
	return err1 == nil && err2 == nil && ta.Name() == tb.Name()
}

// hashFile returns the digest and size of a layer file, and its media type
// from its first bytes.
func (l *Local) hashFile(p string) (v1.Hash, int64, types.MediaType, error) {
	rc, err := l.files.open(p)
	if err != nil {
		return v1.Hash{}, 0, "", err
	}
	defer func() { _ = rc.Close() }()
	h := sha256.New()
	head := make([]byte, 4)
	k, _ := io.ReadFull(rc, head)
	h.Write(head[:k])
	n, err := io.Copy(h, rc)
	if err != nil {
		return v1.Hash{}, 0, "", fmt.Errorf("read %s: %w", p, err)
	}
	mt := types.OCIUncompressedLayer
	switch {
	case k >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		mt = types.OCILayer
	case k == 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd:
		mt = types.OCILayerZStd
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n + int64(k), mt, nil
}

// cleanName is a member name as the archives write them ("./x", "x").
func cleanName(n string) string {
	return path.Clean(strings.TrimPrefix(n, "./"))
}

// dirFiles is an OCI layout directory.
type dirFiles string

func (d dirFiles) open(n string) (io.ReadCloser, error) {
	n = cleanName(n)
	if !fs.ValidPath(n) {
		return nil, errdefs.InvalidArgument("%q is not a name inside the layout", n)
	}
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(n)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("%s is missing from the layout", n)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", n, err)
	}
	return f, nil
}

func (dirFiles) Close() error { return nil }

// tarFiles is a tar archive whose regular files are read in place: a first
// pass records where each one's content lies.
type tarFiles struct {
	f       *os.File
	members map[string]*tar.Header
	offsets map[string]int64
}

// posReader counts the position of the reader archive/tar reads through,
// and lets it seek past file contents instead of reading them.
type posReader struct {
	f   *os.File
	pos int64
}

func (p *posReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	p.pos += int64(n)
	return n, err
}

func (p *posReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.f.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

func openTar(p string) (*tarFiles, error) {
	f, err := os.Open(p) //nolint:gosec // G304: the archive the user named
	if err != nil {
		return nil, err
	}
	t := &tarFiles{f: f, members: map[string]*tar.Header{}, offsets: map[string]int64{}}
	pr := &posReader{f: f}
	tr := tar.NewReader(pr)
	links := map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = f.Close()
			return nil, errdefs.InvalidArgument("%s is not a tar archive: %v", p, err)
		}
		n := cleanName(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg:
			t.members[n], t.offsets[n] = hdr, pr.pos
		case tar.TypeSymlink:
			// docker save links a layer shared by two images to its first
			// copy ("../abc/layer.tar"); the target is a member name, never
			// a path on the host.
			links[n] = cleanName(path.Join(path.Dir(n), hdr.Linkname)) //nolint:gosec // G305: a member name to look up in the archive, never a host path
		}
	}
	for n, target := range links {
		if hdr, ok := t.members[target]; ok {
			t.members[n], t.offsets[n] = hdr, t.offsets[target]
		}
	}
	return t, nil
}

func (t *tarFiles) open(n string) (io.ReadCloser, error) {
	n = cleanName(n)
	hdr, ok := t.members[n]
	if !ok {
		return nil, errdefs.NotFound("%s is missing from the archive", n)
	}
	return io.NopCloser(io.NewSectionReader(t.f, t.offsets[n], hdr.Size)), nil
}

func (t *tarFiles) Close() error { return t.f.Close() }
