package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/oci"
	"github.com/nosecone/nscn/internal/oci/ocitest"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/tree"
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

// TestFetchRegistryTamperedBlob: a layer that fails verification leaves
// the store as it was before the fetch: no entry, no config, none of the
// image's other layers, no temporary file; a layer another image uses
// stays.
func TestFetchRegistryTamperedBlob(t *testing.T) {
	tests := []struct {
		name  string
		other bool // another image using the same base layer is stored first
	}{
		{name: "empty store"},
		{name: "base used by another image", other: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newOCIRig(t)
			ctx := context.Background()
			img, d := r.pushTwoLayers(t)
			if tt.other {
				other := ocitest.Image(t, v1.Config{Cmd: []string{"/bin"}}, ocitest.Layer(t, baseTar(t)))
				od := r.reg.Push(t, "team/other:v1", other)
				if _, err := r.f.Fetch(ctx, Request{Ref: "docker://" + r.reg.Host + "/team/other@" + od.String()}); err != nil {
					t.Fatal(err)
				}
			}
			before, err := r.s.OCIBlobs.Digests(ctx)
			if err != nil {
				t.Fatal(err)
			}
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
			_, err = r.f.Fetch(ctx, Request{Ref: "docker://" + r.reg.Host + "/team/app@" + d.String()})
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), ld.String()) {
				t.Fatalf("got %v, want an InvalidArgument error naming blob %s", err, ld)
			}
			after, err := r.s.OCIBlobs.Digests(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(after, before) {
				t.Errorf("blobs in the store %v, want %v as before the fetch", after, before)
			}
			want := 0
			if tt.other {
				want = 1
			}
			if ims, _ := r.s.Images(ctx); len(ims) != want {
				t.Errorf("%d images recorded, want %d", len(ims), want)
			}
			for _, dir := range []string{filepath.Join(r.dir, "cas", "tmp"), r.f.DownloadDir} {
				ents, _ := os.ReadDir(dir)
				for _, e := range ents {
					if !strings.HasSuffix(e.Name(), ".lock") {
						t.Errorf("left behind: %s/%s", dir, e.Name())
					}
				}
			}
		})
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

func TestFetchRegistryResumesBrokenLayer(t *testing.T) {
	r := newOCIRig(t)
	// Random bytes: gzip leaves them as large as they are.
	big := make([]byte, 3<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	layer := ocitest.Layer(t, ocitest.Tar(t, ocitest.File("big", string(big))))
	ld, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	img := ocitest.Image(t, v1.Config{Cmd: []string{"/big"}}, layer)
	d := r.reg.Push(t, "big:1", img)
	const cut = 1 << 20
	ref := "docker://" + r.reg.Host + "/big@" + d.String()
	t.Run("broken connection, resumed in the same fetch", func(t *testing.T) {
		r.reg.Break[ld.String()] = cut
		if _, err := r.f.Fetch(context.Background(), Request{Ref: ref}); err != nil {
			t.Fatal(err)
		}
		ranges := r.reg.RangesOf(ld)
		if len(ranges) != 2 || ranges[0] != "" || ranges[1] != "bytes=1048576-" {
			t.Fatalf("blob requests had ranges %q, want a full GET then bytes=%d-", ranges, cut)
		}
	})
	t.Run("fetch stopped, resumed by the next one", func(t *testing.T) {
		r := newOCIRig(t)
		d := r.reg.Push(t, "big:1", img)
		ref := "docker://" + r.reg.Host + "/big@" + d.String()
		ctx, cancel := context.WithCancel(context.Background())
		r.reg.Break[ld.String()] = cut
		partial := filepath.Join(r.f.DownloadDir, ld.Hex+".blob")
		r.reg.OnBreak = func() {
			// Stop the fetch once it has stored part of the body, as a
			// kill mid-layer would.
			for range 500 {
				if st, err := os.Stat(partial); err == nil && st.Size() > 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
		}
		if _, err := r.f.Fetch(ctx, Request{Ref: ref}); err == nil {
			t.Fatal("the stopped fetch succeeded")
		}
		if ims, _ := r.s.Images(context.Background()); len(ims) != 0 || r.s.OCIBlobs.Exists(ld.String()) {
			t.Fatal("the stopped fetch stored something")
		}
		if _, err := r.f.Fetch(context.Background(), Request{Ref: ref}); err != nil {
			t.Fatal(err)
		}
		// The second fetch asks only for what the first did not store
		// (as much of the cut body as it read before it was stopped).
		ranges := r.reg.RangesOf(ld)
		if len(ranges) != 2 || !strings.HasPrefix(ranges[1], "bytes=") || strings.HasPrefix(ranges[1], "bytes=0-") {
			t.Fatalf("blob requests had ranges %q, want a full GET then bytes=N-", ranges)
		}
	})
	if !r.s.OCIBlobs.Exists(ld.String()) {
		t.Fatal("the layer is not stored")
	}
}

func TestFetchRegistryLayersInParallel(t *testing.T) {
	r := newOCIRig(t)
	var layers []v1.Layer
	for i := range 6 {
		layers = append(layers, ocitest.Layer(t, ocitest.Tar(t, ocitest.File(fmt.Sprintf("f%d", i), strings.Repeat("x", i+1)))))
	}
	d := r.reg.Push(t, "wide:1", ocitest.Image(t, v1.Config{Cmd: []string{"/f0"}}, layers...))
	r.reg.BlobDelay = 50 * time.Millisecond
	if _, err := r.f.Fetch(context.Background(), Request{Ref: "docker://" + r.reg.Host + "/wide@" + d.String()}); err != nil {
		t.Fatal(err)
	}
	if r.reg.MaxInFlight < 2 || r.reg.MaxInFlight > parallelLayers {
		t.Fatalf("%d blob downloads ran at once, want 2 to %d", r.reg.MaxInFlight, parallelLayers)
	}
}

func TestFetchRegistryAuth(t *testing.T) {
	tests := []struct {
		name     string
		auth     string
		user     string
		authFile string // "" for none
		wantErr  error
	}{
		{name: "anonymous token", auth: "bearer"},
		{
			name: "bearer token for credentials from auth.d", auth: "bearer", user: "alice",
			authFile: `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["HOST"],"credentials":{"user":"alice","password":"s3cret"}}`,
		},
		{name: "bearer without the credentials", auth: "bearer", user: "alice", wantErr: errdefs.ErrPermissionDenied},
		{
			name: "basic from an auth entry", auth: "basic", user: "bob",
			authFile: `{"rktKind":"auth","rktVersion":"v1","domains":["HOST"],"type":"basic","credentials":{"user":"bob","password":"s3cret"}}`,
		},
		{
			name: "basic with a wrong password", auth: "basic", user: "bob", wantErr: errdefs.ErrPermissionDenied,
			authFile: `{"rktKind":"auth","rktVersion":"v1","domains":["HOST"],"type":"basic","credentials":{"user":"bob","password":"nope"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newOCIRig(t)
			_, d := r.pushTwoLayers(t)
			r.reg.Auth, r.reg.User, r.reg.Password = tt.auth, tt.user, "s3cret"
			conf := t.TempDir()
			if tt.authFile != "" {
				if err := os.MkdirAll(filepath.Join(conf, "auth.d"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(conf, "auth.d", "50.json"), []byte(strings.ReplaceAll(tt.authFile, "HOST", r.reg.Host)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r.f.OCI.Keychain = oci.NewKeychain(conf)
			_, err := r.f.Fetch(context.Background(), Request{Ref: "docker://" + r.reg.Host + "/team/app@" + d.String()})
			if tt.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || strings.Contains(err.Error(), "s3cret")) {
				t.Fatalf("got %v, want %v (without the secret)", err, tt.wantErr)
			}
		})
	}
}

// TestFetchRegistryDockerConfig checks that ~/.docker/config.json
// ($DOCKER_CONFIG) is read for registries no auth.d file names, and that
// an auth.d file wins over it.
func TestFetchRegistryDockerConfig(t *testing.T) {
	tests := []struct {
		name       string
		dockerPass string
		authPass   string // "" for no auth.d file
		ok         bool
	}{
		{name: "docker config only", dockerPass: "s3cret", ok: true},
		{name: "auth.d wins over docker config", dockerPass: "wrong", authPass: "s3cret", ok: true},
		{name: "auth.d wins even when wrong", dockerPass: "s3cret", authPass: "wrong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newOCIRig(t)
			_, d := r.pushTwoLayers(t)
			r.reg.Auth, r.reg.User, r.reg.Password = "basic", "carol", "s3cret"
			dockerDir := t.TempDir()
			cred := base64.StdEncoding.EncodeToString([]byte("carol:" + tt.dockerPass))
			if err := os.WriteFile(filepath.Join(dockerDir, "config.json"), []byte(`{"auths":{"`+r.reg.Host+`":{"auth":"`+cred+`"}}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("DOCKER_CONFIG", dockerDir)
			conf := t.TempDir()
			if tt.authPass != "" {
				if err := os.MkdirAll(filepath.Join(conf, "auth.d"), 0o700); err != nil {
					t.Fatal(err)
				}
				f := `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["` + r.reg.Host + `"],"credentials":{"user":"carol","password":"` + tt.authPass + `"}}`
				if err := os.WriteFile(filepath.Join(conf, "auth.d", "50.json"), []byte(f), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r.f.OCI.Keychain = oci.NewKeychain(conf).WithDocker()
			_, err := r.f.Fetch(context.Background(), Request{Ref: "docker://" + r.reg.Host + "/team/app@" + d.String()})
			if (err == nil) != tt.ok {
				t.Fatalf("fetch: %v, want success %v", err, tt.ok)
			}
		})
	}
}

func TestOCISizeLimits(t *testing.T) {
	r := newOCIRig(t)
	ctx := context.Background()
	_, d := r.pushTwoLayers(t)
	ref := "docker://" + r.reg.Host + "/team/app@" + d.String()
	r.f.MaxSize = 100 // below the layers' compressed size
	if _, err := r.f.Fetch(ctx, Request{Ref: ref}); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "--max-image-size") {
		t.Fatalf("got %v, want the compressed size refused naming --max-image-size", err)
	}
	r.f.MaxSize = 0
	im, err := r.f.Fetch(ctx, Request{Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	// Rendered with a bound below the uncompressed size: refused, and no
	// tree is left.
	s, err := store.Open(ctx, r.dir, tree.WithMaxOCISize(4000))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Trees.Render(ctx, im.ID)
	var le *aci.LimitError
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !errors.As(err, &le) {
		t.Fatalf("got %v, want a LimitError", err)
	}
	if trees, _ := s.Trees.List(ctx); len(trees) != 0 {
		t.Fatalf("trees left: %v", trees)
	}
}

func TestFetchRegistryTLS(t *testing.T) {
	reg := ocitest.NewTLSRegistry(t)
	img := ocitest.Image(t, v1.Config{Cmd: []string{"/x"}}, ocitest.Layer(t, ocitest.Tar(t, ocitest.File("x", "x"))))
	d := reg.Push(t, "tls:1", img)
	pool := x509.NewCertPool()
	pool.AddCert(reg.Server.Certificate())
	tests := []struct {
		name        string
		roots       *x509.CertPool
		insecureTLS bool
		ok          bool
	}{
		{name: "certificate checked against the CA", roots: pool, ok: true},
		{name: "unknown CA refused", ok: false},
		{name: "unknown CA with --insecure-options=tls", insecureTLS: true, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newOCIRig(t)
			r.f.InsecureHTTP = false
			r.f.InsecureTLS = tt.insecureTLS
			r.f.OCI.Registry.RootCAs = tt.roots
			_, err := r.f.Fetch(context.Background(), Request{Ref: "docker://" + reg.Host + "/tls@" + d.String()})
			if (err == nil) != tt.ok {
				t.Fatalf("fetch: %v, want success %v", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "--insecure-options=tls")) {
				t.Fatalf("got %v, want PermissionDenied naming --insecure-options=tls", err)
			}
		})
	}
}

func TestFetchRegistryConcurrentSharedBase(t *testing.T) {
	r := newOCIRig(t)
	base := ocitest.Layer(t, baseTar(t))
	bd, err := base.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, n := range []string{"a", "b", "c"} {
		img := ocitest.Image(t, v1.Config{Cmd: []string{"/" + n}}, base, ocitest.Layer(t, ocitest.Tar(t, ocitest.File(n, n))))
		refs = append(refs, "docker://"+r.reg.Host+"/"+n+"@"+r.reg.Push(t, n+":1", img).String())
	}
	r.reg.BlobDelay = 30 * time.Millisecond
	errs := make(chan error, len(refs))
	for _, ref := range refs {
		go func() {
			// Each as its own nscn process would: a Fetcher and Store of
			// its own on the same data directory.
			s, err := store.Open(context.Background(), r.dir)
			if err != nil {
				errs <- err
				return
			}
			f := *r.f
			f.Store = s
			_, err = f.Fetch(context.Background(), Request{Ref: ref})
			errs <- err
		}()
	}
	for range refs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := r.reg.Gets(bd); n != 1 {
		t.Errorf("the shared base was downloaded %d times", n)
	}
	if ims, _ := r.s.Images(context.Background()); len(ims) != 3 {
		t.Errorf("%d images stored, want 3", len(ims))
	}
}

func TestFetchRegistryTimeline(t *testing.T) {
	r := newOCIRig(t)
	_, d := r.pushTwoLayers(t)
	var out bytes.Buffer
	r.f.Timeline = timeline.New("stage0", timeline.Monotonic(), &out)
	if _, err := r.f.Fetch(context.Background(), Request{Ref: "docker://" + r.reg.Host + "/team/app@" + d.String()}); err != nil {
		t.Fatal(err)
	}
	pts, err := timeline.Parse(&out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pts {
		got = append(got, p.Phase)
	}
	if want := []string{"registry-connected", "image-resolved", "layers-stored", "image-recorded"}; !reflect.DeepEqual(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
}
