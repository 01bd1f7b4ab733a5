package tree

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

// fakeSource is an in-memory image store: tars built by the tests, found by
// ID or by name.
type fakeSource struct {
	mu     sync.Mutex
	images map[string]*fakeImage // by full ID
	byName map[string]string     // name -> ID
	opens  map[string]int        // OpenImage calls per ID
	delay  time.Duration         // OpenImage sleeps this long, to widen races
	// serial makes OpenImage return a plain stream, which extraction
	// reads serially, instead of a file-like reader (io.ReaderAt and
	// io.Seeker, as the blob store's files are), whose contents it hands
	// to workers.
	serial bool
}

var _ Source = (*fakeSource)(nil)

type fakeImage struct {
	manifest []byte
	tar      []byte
}

func newFakeSource() *fakeSource {
	return &fakeSource{images: map[string]*fakeImage{}, byName: map[string]string{}, opens: map[string]int{}}
}

// member is one tar entry of a test image, under rootfs/.
type member struct {
	name   string // rootfs-relative, no leading slash; a trailing slash makes a directory
	body   string
	link   string // symlink target
	hard   string // hardlink target, rootfs-relative
	mode   int64
	uid    int
	gid    int
	xattrs map[string]string
}

func dir(name string) member             { return member{name: name + "/", mode: 0o755} }
func file(name, body string) member      { return member{name: name, body: body, mode: 0o644} }
func symlink(name, target string) member { return member{name: name, link: target} }
func depOn(names ...string) []types.Dependency {
	var out []types.Dependency
	for _, n := range names {
		out = append(out, types.Dependency{ImageName: types.ACIdentifier(n)})
	}
	return out
}

// add builds and stores an image; it returns its full ID.
func (f *fakeSource) add(t testing.TB, name string, deps []types.Dependency, whitelist []string, members ...member) string {
	t.Helper()
	m := schema.BlankImageManifest()
	m.Name = types.ACIdentifier(name)
	m.Dependencies = deps
	m.PathWhitelist = whitelist
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("encode manifest of %s: %v", name, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(hdr *tar.Header, body string) {
		hdr.Format = tar.FormatPAX
		hdr.ModTime = time.Unix(1500000000, 0)
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("image %s: write %s: %v", name, hdr.Name, err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	write(&tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(mb))}, string(mb))
	write(&tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	for _, mem := range members {
		hdr := &tar.Header{Name: "rootfs/" + mem.name, Mode: mem.mode, Uid: mem.uid, Gid: mem.gid}
		switch {
		case mem.hard != "":
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, "rootfs/"+mem.hard
		case mem.link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, mem.link, 0o777
		case strings.HasSuffix(mem.name, "/"):
			hdr.Typeflag = tar.TypeDir
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(mem.body))
		}
		for k, v := range mem.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		write(hdr, mem.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(buf.Bytes())
	id := "sha512-" + hex.EncodeToString(sum[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[id] = &fakeImage{manifest: mb, tar: buf.Bytes()}
	f.byName[name] = id
	return id
}

func (f *fakeSource) OCILayers(context.Context, string) ([]OCILayer, error) { return nil, nil }

func (f *fakeSource) OpenImage(ctx context.Context, id string) (io.ReadCloser, error) {
	f.mu.Lock()
	im, ok := f.images[id]
	f.opens[id]++
	delay, serial := f.delay, f.serial
	f.mu.Unlock()
	if !ok {
		return nil, errdefs.NotFound("image %s not found", id)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if serial {
		return io.NopCloser(struct{ io.Reader }{bytes.NewReader(im.tar)}), nil
	}
	return fileLike{bytes.NewReader(im.tar)}, nil
}

// fileLike is an in-memory image that reads like a blob store file.
type fileLike struct{ *bytes.Reader }

func (fileLike) Close() error { return nil }

// truncate cuts the stored tar of an image after n bytes: a corrupt blob.
func (f *fakeSource) truncate(id string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[id].tar = f.images[id].tar[:n]
}

func (f *fakeSource) Manifest(_ context.Context, id string) (*schema.ImageManifest, error) {
	f.mu.Lock()
	im, ok := f.images[id]
	f.mu.Unlock()
	if !ok {
		return nil, errdefs.NotFound("image %s not found", id)
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(im.manifest, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func (f *fakeSource) ResolveDependency(_ context.Context, dep types.Dependency) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dep.ImageID != nil && !dep.ImageID.Empty() {
		want := dep.ImageID.String()
		for id := range f.images {
			if strings.HasPrefix(id, want) {
				return id, nil
			}
		}
		return "", errdefs.NotFound("no image with ID %s", want)
	}
	if id, ok := f.byName[dep.ImageName.String()]; ok {
		return id, nil
	}
	return "", errdefs.NotFound("no image named %s", dep.ImageName)
}

func (f *fakeSource) openCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens[id]
}

// setDeps rewrites the manifest of a stored image, to build graphs whose
// edges point at images added later (cycles).
func (f *fakeSource) setDeps(t testing.TB, id string, deps []types.Dependency) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var m schema.ImageManifest
	if err := json.Unmarshal(f.images[id].manifest, &m); err != nil {
		t.Fatal(err)
	}
	m.Dependencies = deps
	mb, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	f.images[id].manifest = mb
}
