//go:build functional

package registry

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one member of a layer tar.
type entry struct {
	name string
	typ  byte // tar.TypeReg (the zero value: a file), TypeDir, TypeSymlink, TypeLink
	body string
	link string // symlink target or hard link's first name
	mode int64  // 0: 0644 for files, 0755 for directories
}

func file(name, body string) entry      { return entry{name: name, body: body} }
func script(name, body string) entry    { return entry{name: name, body: body, mode: 0o755} }
func dir(name string) entry             { return entry{name: name, typ: tar.TypeDir} }
func symlink(name, target string) entry { return entry{name: name, typ: tar.TypeSymlink, link: target} }

func hardlink(name, target string) entry  { return entry{name: name, typ: tar.TypeLink, link: target} }
func whiteout(dirName, base string) entry { return file(filepath.Join(dirName, ".wh."+base), "") }
func opaque(dirName string) entry         { return file(filepath.Join(dirName, ".wh..wh..opq"), "") }

// layerOf is a gzip layer of the entries.
func layerOf(t *testing.T, es ...entry) v1.Layer {
	t.Helper()
	return gzipLayer(t, tarOf(t, es...))
}

// tarOf writes the entries as an uncompressed tar, owned by root, with a
// fixed time so the same entries give the same digest.
func tarOf(t *testing.T, es ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: mtime, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		switch {
		case h.Mode != 0:
		case h.Typeflag == tar.TypeDir:
			h.Mode = 0o755
		case h.Typeflag == tar.TypeSymlink:
			h.Mode = 0o777
		default:
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzipLayer is the tar as a gzip layer of a Docker schema 2 image.
func gzipLayer(t *testing.T, tarball []byte) v1.Layer {
	t.Helper()
	return compressedLayer(t, tarball, compression.GZip, types.DockerLayer)
}

// compressedLayer is the tar compressed with c, with media type mt.
func compressedLayer(t *testing.T, tarBytes []byte, c compression.Compression, mt types.MediaType) v1.Layer {
	t.Helper()
	if c == compression.None {
		return static.NewLayer(tarBytes, mt)
	}
	// Compress once, so every read of the layer has the same bytes.
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithCompression(c), tarball.WithMediaType(mt), tarball.WithCompressedCaching)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var (
	busyboxOnce sync.Once
	busyboxTar  []byte
	busyboxErr  error
)

// busyboxLayer is the rootfs of build/images/busybox.aci as a gzip layer:
// the base every test image builds on.
func busyboxLayer(t *testing.T) v1.Layer {
	t.Helper()
	busyboxOnce.Do(func() { busyboxTar, busyboxErr = rootfsTar(busyboxACI(t)) })
	if busyboxErr != nil {
		t.Fatalf("busybox layer from %s: %v", busyboxACI(t), busyboxErr)
	}
	return gzipLayer(t, busyboxTar)
}

// rootfsTar reads an ACI (a tar, maybe compressed, of manifest and
// rootfs/) and returns the tar of its rootfs/ members with the prefix
// taken off.
func rootfsTar(aci string) ([]byte, error) {
	f, err := os.Open(aci) //nolint:gosec // G304: the test image make test-images built
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		r = gz
	}
	tr := tar.NewReader(r)
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	found := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		rel, ok := strings.CutPrefix(strings.TrimPrefix(h.Name, "./"), "rootfs/")
		if !ok || rel == "" {
			continue
		}
		found = true
		h.Name = rel
		if h.Typeflag == tar.TypeLink {
			h.Linkname = strings.TrimPrefix(strings.TrimPrefix(h.Linkname, "./"), "rootfs/")
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, tr); err != nil { //nolint:gosec // G110: the test's own image
			return nil, err
		}
	}
	if !found {
		return nil, errors.New("no rootfs/ members")
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// defaultPath is the PATH of every test image's config.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// imageOf is a linux/amd64 Docker schema 2 image with the config and the
// layers, bottom first.
func imageOf(t *testing.T, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	return platformImage(t, "amd64", cfg, layers...)
}

func platformImage(t *testing.T, arch string, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	if cfg.Env == nil {
		cfg.Env = []string{defaultPath}
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS:           "linux",
		Architecture: arch,
		Created:      v1.Time{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
		Config:       cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		t.Fatal(err)
	}
	return img
}

// asOCI turns an image into an OCI manifest with an OCI config.
func asOCI(img v1.Image) v1.Image {
	return mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
}

// pushOptions are the options of every write to the registry.
func (r *registry) pushOptions() []remote.Option {
	opts := []remote.Option{remote.WithTransport(r.transport()), remote.WithContext(context.Background())}
	if r.opts.auth {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: regUser, Password: regPassword}))
	}
	return opts
}

func (r *registry) tag(repoTag string) name.Reference {
	r.t.Helper()
	var opts []name.Option
	if !r.opts.tls {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.NewTag(r.host+"/"+repoTag, opts...)
	if err != nil {
		r.t.Fatal(err)
	}
	return ref
}

// push writes the image under repo:tag and returns its manifest digest.
func (r *registry) push(repoTag string, img v1.Image) string {
	r.t.Helper()
	if err := remote.Write(r.tag(repoTag), img, r.pushOptions()...); err != nil {
		r.t.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		r.t.Fatal(err)
	}
	return d.String()
}

// pushIndex writes the index (a manifest list) under repo:tag and returns
// its digest.
func (r *registry) pushIndex(repoTag string, idx v1.ImageIndex) string {
	r.t.Helper()
	if err := remote.WriteIndex(r.tag(repoTag), idx, r.pushOptions()...); err != nil {
		r.t.Fatalf("push index %s: %v", repoTag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		r.t.Fatal(err)
	}
	return d.String()
}

// digestOf is a layer's or image's digest.
func digestOf(t *testing.T, x interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func diffIDOf(t *testing.T, l v1.Layer) string {
	t.Helper()
	d, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func sizeOf(t *testing.T, l v1.Layer) int64 {
	t.Helper()
	n, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// greetImage is the multi-layer image of the run test: busybox, a layer
// with a file, a layer with a script that prints it; its cmd runs the
// script.
func greetImage(t *testing.T) v1.Image {
	t.Helper()
	return imageOf(t, v1.Config{Cmd: []string{"/usr/local/bin/greet"}},
		busyboxLayer(t),
		layerOf(t, dir("srv"), file("srv/message", "from the second layer")),
		layerOf(t, dir("usr/local"), dir("usr/local/bin"), script("usr/local/bin/greet", "#!/bin/sh\necho \"hello, $(cat /srv/message)\"\n")),
	)
}

// greetOutput is what greetImage prints.
const greetOutput = "hello, from the second layer"
