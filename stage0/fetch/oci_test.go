package fetch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/oci"
	"github.com/nosecone/nscn/internal/oci/ocitest"
	"github.com/nosecone/nscn/store"
)

// ociRig is a store, a fetcher and a registry on loopback.
type ociRig struct {
	dir string
	s   *store.Store
	f   *Fetcher
	reg *ocitest.Registry
}

func newOCIRig(t *testing.T) *ociRig {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return &ociRig{
		dir: dir, s: s, reg: ocitest.NewRegistry(t),
		f: &Fetcher{Store: s, PullPolicy: PullUpdate, InsecureHTTP: true, DownloadDir: filepath.Join(dir, "tmp", "downloads")},
	}
}

var (
	baseTar = func(t *testing.T) []byte {
		return ocitest.Tar(t, ocitest.Dir("etc/"), ocitest.File("etc/passwd", "root:x:0:0::/root:/bin/sh\nweb:x:33:44::/srv:/bin/sh\n"),
			ocitest.File("etc/motd", "hello"), ocitest.Dir("opt/"), ocitest.Dir("opt/app/"), ocitest.File("opt/app/old", "1"),
			ocitest.Exe("bin", "base"))
	}
	upperTar = func(t *testing.T) []byte {
		return ocitest.Tar(t, ocitest.File("etc/.wh.motd", ""), ocitest.File("opt/app/.wh..wh..opq", ""), ocitest.File("opt/app/new", "2"),
			ocitest.Hardlink("etc/pw", "etc/passwd"))
	}
)

func (r *ociRig) pushTwoLayers(t *testing.T) (v1.Image, v1.Hash) {
	t.Helper()
	img := ocitest.Image(t, v1.Config{Entrypoint: []string{"/bin/echo"}, Cmd: []string{"hi"}, User: "web", Env: []string{"A=1"}},
		ocitest.Layer(t, baseTar(t)), ocitest.Layer(t, upperTar(t)))
	return img, r.reg.Push(t, "team/app:v1", img)
}

func TestFetchRegistryTagNeedsInsecureImage(t *testing.T) {
	r := newOCIRig(t)
	_, d := r.pushTwoLayers(t)
	_, err := r.f.Fetch(context.Background(), Request{Ref: "docker://" + r.reg.Host + "/team/app:v1"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("got %v, want a FailedPrecondition refusal", err)
	}
	want := "docker://" + r.reg.Host + "/team/app@" + d.String()
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--insecure-options=image") {
		t.Fatalf("refusal %q does not say how to pin (%s) or skip the check", err, want)
	}
	if ims, _ := r.s.Images(context.Background()); len(ims) != 0 {
		t.Fatalf("the refusal stored %d images", len(ims))
	}
}

func TestFetchRegistryRendersLayers(t *testing.T) {
	r := newOCIRig(t)
	ctx := context.Background()
	_, d := r.pushTwoLayers(t)
	tests := []struct {
		name     string
		ref      string
		insecure bool
	}{
		{name: "pinned by digest, no insecure option", ref: "docker://" + r.reg.Host + "/team/app@" + d.String()},
		{name: "tag with insecure image", ref: "docker://" + r.reg.Host + "/team/app:v1", insecure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.f.InsecureImage = tt.insecure
			im, err := r.f.Fetch(ctx, Request{Ref: tt.ref})
			if err != nil {
				t.Fatal(err)
			}
			if im.OCI == nil || im.OCI.Digest != d.String() || len(im.OCI.Layers) != 2 {
				t.Fatalf("entry %+v does not record the OCI image %s", im.OCI, d)
			}
			if !strings.Contains(im.Source, d.String()) {
				t.Errorf("source %q does not name the digest", im.Source)
			}
			m, err := r.s.Manifest(ctx, im.ID)
			if err != nil {
				t.Fatal(err)
			}
			if m.Name.String() != oci.ImageName(r.reg.Host+"/team/app") || strings.Join(m.App.Exec, " ") != "/bin/echo hi" || m.App.User != "web" {
				t.Errorf("manifest: name %s exec %v user %s", m.Name, m.App.Exec, m.App.User)
			}
			tr, err := r.s.Trees.Render(ctx, im.ID)
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range map[string]bool{"etc/passwd": true, "etc/motd": false, "opt/app/old": false, "opt/app/new": true, "etc/pw": true, "bin": true} {
				_, err := os.Lstat(filepath.Join(tr.Rootfs, p))
				if (err == nil) != want {
					t.Errorf("%s: present %v, want %v", p, err == nil, want)
				}
			}
			if err := r.s.Trees.Verify(ctx, tr.Key); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFetchRegistryPlainHTTPRefused(t *testing.T) {
	r := newOCIRig(t)
	_, d := r.pushTwoLayers(t)
	r.f.InsecureHTTP = false
	_, err := r.f.Fetch(context.Background(), Request{Ref: "docker://" + r.reg.Host + "/team/app@" + d.String()})
	if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "--insecure-options=http") {
		t.Fatalf("got %v, want a PermissionDenied error naming --insecure-options=http", err)
	}
}

func TestFetchRegistryTamperedBlob(t *testing.T) {
	r := newOCIRig(t)
	img, d := r.pushTwoLayers(t)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := layers[1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, _ := layers[1].Size()
	r.reg.Tamper[ld.String()] = make([]byte, size) // right length, wrong bytes
	_, err = r.f.Fetch(context.Background(), Request{Ref: "docker://" + r.reg.Host + "/team/app@" + d.String()})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), ld.String()) {
		t.Fatalf("got %v, want an InvalidArgument error naming blob %s", err, ld)
	}
	if r.s.OCIBlobs.Exists(ld.String()) {
		t.Error("the tampered blob is in the store")
	}
	if ims, _ := r.s.Images(context.Background()); len(ims) != 0 {
		t.Errorf("%d images recorded", len(ims))
	}
	for _, dir := range []string{filepath.Join(r.dir, "cas", "tmp"), r.f.DownloadDir} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".lock") {
				t.Errorf("left behind: %s/%s", dir, e.Name())
			}
		}
	}
}

func TestFetchRegistrySharesLayers(t *testing.T) {
	r := newOCIRig(t)
	ctx := context.Background()
	base := ocitest.Layer(t, baseTar(t))
	baseDigest, err := base.Digest()
	if err != nil {
		t.Fatal(err)
	}
	a := ocitest.Image(t, v1.Config{Cmd: []string{"/bin"}}, base, ocitest.Layer(t, ocitest.Tar(t, ocitest.File("a", "a"))))
	b := ocitest.Image(t, v1.Config{Cmd: []string{"/bin"}}, base, ocitest.Layer(t, ocitest.Tar(t, ocitest.File("b", "b"))))
	da, db := r.reg.Push(t, "a:1", a), r.reg.Push(t, "b:1", b)
	imA, err := r.f.Fetch(ctx, Request{Ref: "docker://" + r.reg.Host + "/a@" + da.String()})
	if err != nil {
		t.Fatal(err)
	}
	imB, err := r.f.Fetch(ctx, Request{Ref: "docker://" + r.reg.Host + "/b@" + db.String()})
	if err != nil {
		t.Fatal(err)
	}
	if n := r.reg.Gets(baseDigest); n != 1 {
		t.Errorf("the shared base layer was downloaded %d times, want once", n)
	}
	// Removing one image keeps the shared layer; removing both drops it.
	if _, err := r.s.Remove(ctx, imA.Key, store.References{}); err != nil {
		t.Fatal(err)
	}
	if !r.s.OCIBlobs.Exists(baseDigest.String()) {
		t.Fatal("image rm removed a layer another image uses")
	}
	if r.s.OCIBlobs.Exists(imA.OCI.Layers[1].Digest) {
		t.Error("image rm kept a layer no image uses")
	}
	if _, err := r.s.Remove(ctx, imB.Key, store.References{}); err != nil {
		t.Fatal(err)
	}
	if left, _ := r.s.OCIBlobs.Digests(ctx); len(left) != 0 {
		t.Errorf("blobs left after removing every image: %v", left)
	}
}

func TestFetchRegistryIndexPicksPlatform(t *testing.T) {
	r := newOCIRig(t)
	ctx := context.Background()
	mk := func(arch string) v1.Image {
		img := ocitest.Image(t, v1.Config{Cmd: []string{"/" + arch}}, ocitest.Layer(t, ocitest.Tar(t, ocitest.File(arch, arch))))
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.Architecture = arch
		img, err := mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: mk("arm64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: mk("amd64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	d := r.reg.PushIndex(t, "multi:1", idx)
	tests := []struct{ arch, wantExec, wantLabel string }{
		{arch: "", wantExec: "/amd64", wantLabel: "amd64"},
		{arch: "arm64", wantExec: "/arm64", wantLabel: "aarch64"},
	}
	for _, tt := range tests {
		t.Run("arch "+tt.arch, func(t *testing.T) {
			p, err := oci.ParsePlatform("", tt.arch)
			if err != nil {
				t.Fatal(err)
			}
			r.f.OCI.Platform = p
			im, err := r.f.Fetch(ctx, Request{Ref: "docker://" + r.reg.Host + "/multi@" + d.String()})
			if err != nil {
				t.Fatal(err)
			}
			m, err := r.s.Manifest(ctx, im.ID)
			if err != nil {
				t.Fatal(err)
			}
			arch, _ := m.GetLabel("arch")
			if strings.Join(m.App.Exec, " ") != tt.wantExec || arch != tt.wantLabel {
				t.Errorf("exec %v arch %s, want %s %s", m.App.Exec, arch, tt.wantExec, tt.wantLabel)
			}
		})
	}
	r.f.OCI.Platform = oci.Platform{OS: "linux", Arch: "s390x"}
	_, err := r.f.Fetch(ctx, Request{Ref: "docker://" + r.reg.Host + "/multi@" + d.String()})
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "linux/amd64") {
		t.Fatalf("got %v, want NotFound listing the platforms", err)
	}
}

func TestFetchRegistryPullPolicy(t *testing.T) {
	r := newOCIRig(t)
	ctx := context.Background()
	r.f.InsecureImage = true
	ref := "docker://" + r.reg.Host + "/team/app:v1"
	r.f.PullPolicy = PullNever
	if _, err := r.f.Fetch(ctx, Request{Ref: ref}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("never, nothing stored: got %v, want NotFound", err)
	}
	_, d1 := r.pushTwoLayers(t)
	r.f.PullPolicy = PullNew
	first, err := r.f.Fetch(ctx, Request{Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	// The tag moves.
	img := ocitest.Image(t, v1.Config{Cmd: []string{"/v2"}}, ocitest.Layer(t, ocitest.Tar(t, ocitest.File("v2", "2"))))
	d2 := r.reg.Push(t, "team/app:v1", img)
	for _, tt := range []struct {
		policy PullPolicy
		want   v1.Hash
	}{{PullNew, d1}, {PullNever, d1}, {PullUpdate, d2}} {
		r.f.PullPolicy = tt.policy
		im, err := r.f.Fetch(ctx, Request{Ref: ref})
		if err != nil {
			t.Fatalf("%s: %v", tt.policy, err)
		}
		if im.OCI.Digest != tt.want.String() {
			t.Errorf("pull policy %s gave %s, want %s", tt.policy, im.OCI.Digest, tt.want)
		}
	}
	_ = first
}
