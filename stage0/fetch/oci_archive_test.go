package fetch

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/oci/ocitest"
)

// archiveImage is the image the archive tests write, and its config
// digest (docker's image ID).
func archiveImage(t *testing.T) (v1.Image, v1.Hash, v1.Hash) {
	t.Helper()
	img := ocitest.Image(t, v1.Config{Entrypoint: []string{"/bin"}},
		ocitest.Layer(t, baseTar(t)), ocitest.Layer(t, upperTar(t)))
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cd, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return img, d, cd
}

// writeLayout writes img as an OCI layout with the ref name "v1".
func writeLayout(t *testing.T, dir string, img v1.Image) {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
}

// tarDir writes the files under dir into a tar at file, as skopeo's
// oci-archive: does.
func tarDir(t *testing.T, dir, file string) {
	t.Helper()
	out, err := os.Create(file) //nolint:forbidigo,gosec // a test file in the test's own directory
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = out.Close() }()
	tw := tar.NewWriter(out)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p) //nolint:gosec // G304: the test's own files
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFetchArchives(t *testing.T) {
	img, digest, configDigest := archiveImage(t)
	dir := t.TempDir()
	layoutDir := filepath.Join(dir, "layout")
	writeLayout(t, layoutDir, img)
	ociArchive := filepath.Join(dir, "image.tar")
	tarDir(t, layoutDir, ociArchive)
	dockerArchive := filepath.Join(dir, "save.tar")
	tag, err := name.NewTag("example.com/team/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(dockerArchive, tag, img); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		ref      string
		insecure bool
		wantErr  error
		wantName string
		wantMsg  string
	}{
		{name: "layout by ref, unverified", ref: "oci:" + layoutDir + ":v1", insecure: true, wantName: "layout"},
		{name: "layout, only image", ref: "oci:" + layoutDir, insecure: true, wantName: "layout"},
		{name: "layout pinned", ref: "oci:" + layoutDir + "@" + digest.String(), wantName: "layout"},
		{name: "layout not pinned", ref: "oci:" + layoutDir + ":v1", wantErr: errdefs.ErrFailedPrecondition, wantMsg: "oci:" + layoutDir + "@" + digest.String()},
		{name: "layout, unknown ref", ref: "oci:" + layoutDir + ":v2", insecure: true, wantErr: errdefs.ErrNotFound, wantMsg: "v1"},
		{name: "layout pinned to another digest", ref: "oci:" + layoutDir + "@sha256:" + strings.Repeat("0", 64), wantErr: errdefs.ErrNotFound},
		{name: "missing layout", ref: "oci:" + filepath.Join(dir, "nope"), insecure: true, wantErr: errdefs.ErrNotFound},
		{name: "oci archive pinned", ref: "oci-archive:" + ociArchive + "@" + digest.String(), wantName: "image"},
		{name: "oci archive unverified", ref: "oci-archive:" + ociArchive, insecure: true, wantName: "image"},
		{name: "docker archive pinned by config digest", ref: "docker-archive:" + dockerArchive + "@" + configDigest.String(), wantName: "example.com/team/app"},
		{name: "docker archive by tag", ref: "docker-archive:" + dockerArchive + ":example.com/team/app:1.0", insecure: true, wantName: "example.com/team/app"},
		{name: "docker archive not pinned", ref: "docker-archive:" + dockerArchive, wantErr: errdefs.ErrFailedPrecondition, wantMsg: configDigest.String()},
		{name: "not an archive", ref: "docker-archive:" + filepath.Join(layoutDir, "oci-layout"), insecure: true, wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newOCIRig(t)
			r.f.InsecureImage = tt.insecure
			im, err := r.f.Fetch(context.Background(), Request{Ref: tt.ref})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("got %v, want %v holding %q", err, tt.wantErr, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if im.Name != tt.wantName || len(im.OCI.Layers) != 2 {
				t.Fatalf("image %s with %d layers", im.Name, len(im.OCI.Layers))
			}
			tr, err := r.s.Trees.Render(context.Background(), im.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(tr.Rootfs, "opt", "app", "new")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(tr.Rootfs, "etc", "motd")); err == nil {
				t.Fatal("the whiteout was not applied")
			}
		})
	}
}
