//go:build functional

package registry

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestRunImageFromRegistry runs a three-layer image's cmd, pulled from the
// registry over plain http, with each flavor: the output needs a file of
// the second layer and a script of the third.
func TestRunImageFromRegistry(t *testing.T) {
	for _, f := range []flavor{fly, nspawn} {
		t.Run(string(f), func(t *testing.T) {
			reg := startRegistry(t, registryOpts{})
			reg.push("greet:v1", greetImage(t))
			e := newEnv(t)
			r := e.ok(flavorRunArgs(t, f, "http,image", reg.ref("greet:v1"))...)
			if !slices.Contains(lines(r.stdout), greetOutput) {
				t.Fatalf("want a line %q:\n%s", greetOutput, r)
			}
		})
	}
}

// TestWhiteoutsAndOpaqueDirectories checks that the rendered tree applies
// the layers in order as the OCI image spec says: a whiteout removes a
// file or a whole directory of a lower layer, an opaque directory hides
// all of the lower layers' content of it, a file whited out and added
// again is the new one, the whiteout markers themselves are not in the
// tree, and hard links and symlinks are kept.
func TestWhiteoutsAndOpaqueDirectories(t *testing.T) {
	reg := startRegistry(t, registryOpts{})
	img := imageOf(t, v1.Config{},
		busyboxLayer(t),
		layerOf(t,
			dir("data"),
			file("data/gone", "lower"),
			dir("data/gonedir"), file("data/gonedir/f", "lower"),
			dir("data/opq"), file("data/opq/old1", "lower"), dir("data/opq/sub"), file("data/opq/sub/old2", "lower"),
			dir("data/keep"), file("data/keep/a", "a"),
			file("data/reborn", "old"),
			file("data/target", "target body"),
		),
		layerOf(t,
			dir("data"),
			whiteout("data", "gone"),
			whiteout("data", "gonedir"),
			dir("data/opq"), opaque("data/opq"), file("data/opq/new", "new"),
			dir("data/keep"), file("data/keep/b", "b"),
			whiteout("data", "reborn"),
			hardlink("data/hard", "data/target"),
			symlink("data/soft", "target"),
		),
		layerOf(t, dir("data"), file("data/reborn", "new")),
	)
	reg.push("layers:v1", img)
	e := newEnv(t)
	const script = `cd /data && find . | sort && echo --- && cat keep/a keep/b opq/new reborn && echo && ` +
		`echo links $(stat -c %h target) $(stat -c %i target) $(stat -c %i hard) $(readlink soft)`
	r := e.ok(runArgs(t, "http,image", reg.ref("layers:v1"), "--exec=/bin/sh", "--", "-c", script)...)
	tree, rest, ok := strings.Cut(r.stdout, "---")
	if !ok {
		t.Fatalf("no separator in the output:\n%s", r)
	}
	want := []string{".", "./hard", "./keep", "./keep/a", "./keep/b", "./opq", "./opq/new", "./reborn", "./soft", "./target"}
	if got := lines(tree); !slices.Equal(got, want) {
		t.Errorf("/data holds\n%q\nwant\n%q", got, want)
	}
	l := lines(rest)
	if len(l) != 2 || l[0] != "abnewnew" {
		t.Fatalf("file contents: want abnewnew and a links line:\n%s", r)
	}
	// links LINKCOUNT INODE(target) INODE(hard) SYMLINK-TARGET
	f := strings.Fields(l[1])
	if len(f) != 5 || f[1] != "2" || f[2] != f[3] || f[4] != "target" {
		t.Errorf("hard link and symlink: got %q, want link count 2, one inode, soft -> target", l[1])
	}
}

// configImage is the image of the config tests: its config gives
// entrypoint and cmd apart, env, a user by name (resolved in the image's
// /etc/passwd, group from the user's entry), a working directory, an
// exposed port, a volume and a label. An OCI manifest, where the other
// test images are Docker schema 2.
func configImage(t *testing.T) v1.Image {
	t.Helper()
	return asOCI(imageOf(t, v1.Config{
		Entrypoint:   []string{"/usr/local/bin/show"},
		Cmd:          []string{"default", "cmd"},
		Env:          []string{defaultPath, "GREETING=hello from the config"},
		User:         "app",
		WorkingDir:   "/srv/app",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		Labels:       map[string]string{"org.example.flavour": "mint"},
	},
		busyboxLayer(t),
		layerOf(t,
			dir("etc"),
			file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/srv/app:/bin/sh\n"),
			file("etc/group", "root:x:0:\napps:x:2345:\n"),
			dir("srv"), dir("srv/app"), dir("data"),
			dir("usr/local"), dir("usr/local/bin"),
			script("usr/local/bin/show", "#!/bin/sh\necho \"args=$*\"\necho \"ids=$(id -u):$(id -g)\"\necho \"pwd=$(pwd)\"\necho \"greeting=$GREETING\"\n"),
		),
	))
}

// TestImageConfigBecomesTheApp checks that the image config is honoured as
// docker and podman users expect: entrypoint followed by cmd; arguments
// replace cmd only; --exec replaces the entrypoint; env, user and working
// directory apply in each case.
func TestImageConfigBecomesTheApp(t *testing.T) {
	reg := startRegistry(t, registryOpts{})
	reg.push("config:v1", configImage(t))
	tests := []struct {
		name string
		app  []string // app flags and arguments after the image
		want []string // lines of stdout
	}{
		{
			name: "entrypoint and cmd",
			want: []string{"args=default cmd", "ids=1234:2345", "pwd=/srv/app", "greeting=hello from the config"},
		},
		{
			name: "arguments replace cmd",
			app:  []string{"--", "one", "two"},
			want: []string{"args=one two", "ids=1234:2345", "pwd=/srv/app", "greeting=hello from the config"},
		},
		{
			name: "--exec replaces the entrypoint",
			app:  []string{"--exec=/bin/sh", "--", "-c", `echo "replaced $(id -u) $(pwd) $GREETING"`},
			want: []string{"replaced 1234 /srv/app hello from the config"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.ok(runArgs(t, "http,image", reg.ref("config:v1"), tt.app...)...)
			got := lines(r.stdout)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("no line %q in stdout", w)
				}
			}
			if t.Failed() {
				t.Logf("%s", r)
			}
		})
	}
}

// TestImageConfigPortsVolumesLabels checks what `image cat-manifest`
// shows of the app: the exposed port as a named port of 8080/tcp (usable
// with --port), the volume as a mount point at /data, the label.
func TestImageConfigPortsVolumesLabels(t *testing.T) {
	reg := startRegistry(t, registryOpts{})
	reg.push("config:v1", configImage(t))
	e := newEnv(t)
	id := strings.TrimSpace(e.ok(fetchArgs("http,image", reg.ref("config:v1"))...).stdout)
	r := e.ok("image", "cat-manifest", id)
	var m struct {
		App struct {
			Ports       []port       `json:"ports"`
			MountPoints []mountPoint `json:"mountPoints"`
		} `json:"app"`
		Annotations []annotation `json:"annotations"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("cat-manifest is not JSON: %v\n%s", err, r)
	}
	if !slices.ContainsFunc(m.App.Ports, func(p port) bool { return p.Port == 8080 && p.Protocol == "tcp" && p.Name != "" }) {
		t.Errorf("no named port 8080/tcp in the app:\n%s", r.stdout)
	}
	if !slices.ContainsFunc(m.App.MountPoints, func(p mountPoint) bool { return p.Path == "/data" && p.Name != "" }) {
		t.Errorf("no mount point at /data in the app:\n%s", r.stdout)
	}
	if !slices.Contains(m.Annotations, annotation{Name: "org.example.flavour", Value: "mint"}) {
		t.Errorf("no annotation org.example.flavour=mint:\n%s", r.stdout)
	}
}

// The parts of an appc image manifest the config test reads.
type (
	port struct {
		Name     string `json:"name"`
		Protocol string `json:"protocol"`
		Port     int    `json:"port"`
	}
	mountPoint struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}
	annotation struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
)

// TestSharedBaseStoredOnce pulls two images on the same busybox base: the
// base is downloaded once (counted at the registry, through a proxy) and
// stored once (counted in the store), and the second image runs from it.
func TestSharedBaseStoredOnce(t *testing.T) {
	reg := startRegistry(t, registryOpts{})
	p := startProxy(t, reg)
	base := busyboxLayer(t)
	la := layerOf(t, file("a.txt", "only in a"))
	lb := layerOf(t, file("b.txt", "only in b"))
	reg.push("first:v1", imageOf(t, v1.Config{}, base, la))
	reg.push("second:v1", imageOf(t, v1.Config{}, base, lb))
	e := newEnv(t)
	e.ok(fetchArgs("http,image", p.ref("first:v1"))...)
	e.ok(fetchArgs("http,image", p.ref("second:v1"))...)
	for _, c := range []struct {
		name  string
		layer v1.Layer
	}{{"base", base}, {"first's own layer", la}, {"second's own layer", lb}} {
		if n := len(p.blobGets(digestOf(t, c.layer))); n != 1 {
			t.Errorf("%s (%s): downloaded %d times, want once\n%s", c.name, digestOf(t, c.layer), n, p.dump())
		}
		if files := e.filesWithDigest(digestOf(t, c.layer), diffIDOf(t, c.layer)); len(files) != 1 {
			t.Errorf("%s: stored as %q, want exactly one file whose sha256 is its digest or diff ID", c.name, files)
		}
	}
	r := e.ok(runArgs(t, "http,image", p.ref("second:v1"), "--exec=/bin/cat", "--", "/b.txt")...)
	if !strings.Contains(r.stdout, "only in b") {
		t.Fatalf("second image's own file not in its pod:\n%s", r)
	}
	// The run found both images in the store: no blob was fetched again.
	if n := len(p.blobGets(digestOf(t, base))); n != 1 {
		t.Errorf("the run downloaded the base again (%d GETs in all)", n)
	}
}

// TestLayerCompressions runs an OCI image whose layers are gzip, zstd and
// uncompressed.
func TestLayerCompressions(t *testing.T) {
	reg := startRegistry(t, registryOpts{})
	img := asOCI(imageOf(t, v1.Config{},
		compressedLayer(t, tarOf(t, file("gzip.txt", "gzip")), compression.GZip, types.OCILayer),
		busyboxLayer(t),
		compressedLayer(t, tarOf(t, file("zstd.txt", "zstd")), compression.ZStd, types.OCILayerZStd),
		compressedLayer(t, tarOf(t, file("plain.txt", "plain")), compression.None, types.OCIUncompressedLayer),
	))
	reg.push("compressions:v1", img)
	e := newEnv(t)
	r := e.ok(runArgs(t, "http,image", reg.ref("compressions:v1"), "--exec=/bin/cat", "--", "/gzip.txt", "/zstd.txt", "/plain.txt")...)
	if strings.TrimSpace(r.stdout) != "gzipzstdplain" {
		t.Fatalf("want gzipzstdplain:\n%s", r)
	}
	// Fetched and not rendered yet: nscn, which links no zstd decoder,
	// meets the zstd layer while it renders and hands the run to
	// nscn-fetch, which renders and runs it.
	e = newEnv(t)
	id := strings.TrimSpace(e.ok(fetchArgs("http,image", reg.ref("compressions:v1"), "--full")...).stdout)
	r = e.ok(runArgs(t, "image", id, "--exec=/bin/cat", "--", "/gzip.txt", "/zstd.txt", "/plain.txt")...)
	if strings.TrimSpace(r.stdout) != "gzipzstdplain" {
		t.Fatalf("run of the stored image: want gzipzstdplain:\n%s", r)
	}
}

// archImage is one entry of the manifest list: busybox and a file naming
// its architecture.
func archImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	return platformImage(t, arch, v1.Config{Cmd: []string{"/bin/cat", "/arch"}}, busyboxLayer(t), layerOf(t, file("arch", arch)))
}

// TestManifestListPicksPlatform pulls a manifest list with arm64 listed
// first and amd64 second: by default nscn takes amd64 (and runs it);
// --arch=arm64 takes the other. Which manifest and which layer were
// downloaded is counted at the registry.
func TestManifestListPicksPlatform(t *testing.T) {
	reg := startRegistry(t, registryOpts{})
	amd, arm := archImage(t, "amd64"), archImage(t, "arm64")
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.DockerManifestList),
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	reg.pushIndex("multi:v1", idx)
	layerOfArch := func(img v1.Image) string {
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		return digestOf(t, ls[len(ls)-1])
	}
	tests := []struct {
		name       string
		args       func(p *proxy) []string
		want, skip v1.Image
		output     string // what the run prints; "" for a fetch
	}{
		{
			name: "default is amd64",
			args: func(p *proxy) []string { return runArgs(t, "http,image", p.ref("multi:v1")) },
			want: amd, skip: arm, output: "amd64",
		},
		{
			name: "--arch=arm64",
			args: func(p *proxy) []string { return fetchArgs("http,image", p.ref("multi:v1"), "--arch=arm64") },
			want: arm, skip: amd,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, reg)
			e := newEnv(t)
			r := e.ok(tt.args(p)...)
			if tt.output != "" && strings.TrimSpace(r.stdout) != tt.output {
				t.Errorf("want output %q:\n%s", tt.output, r)
			}
			want, skip := digestOf(t, tt.want), digestOf(t, tt.skip)
			if p.manifestGets(want) == 0 || len(p.blobGets(layerOfArch(tt.want))) != 1 {
				t.Errorf("manifest %s or its own layer not downloaded:\n%s", want, p.dump())
			}
			if p.manifestGets(skip) != 0 || len(p.blobGets(layerOfArch(tt.skip))) != 0 {
				t.Errorf("the other platform's manifest %s or layer was downloaded:\n%s", skip, p.dump())
			}
			if list := e.ok("image", "list", "--format=json").stdout; !strings.Contains(list, want) {
				t.Errorf("image list does not show the digest %s:\n%s", want, list)
			}
		})
	}
}
