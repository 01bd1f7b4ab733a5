package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	ocilayout "github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"

	"github.com/nosecone/nscn/internal/testutil/registrytest"
)

// Figure 8 ("pull"): `nscn fetch docker://…` of a large image from a
// registry on loopback, cold store, against `podman pull` and
// `skopeo copy docker://… oci:DIR` of the same image from the same
// registry, and against the floor: the larger of downloading every blob
// at once with Go's HTTP client and gunzip of the largest layer (what no
// puller can beat on this machine: it must both receive every byte and
// decompress the biggest layer, which is one stream).
//
// The image is 10 gzip layers of about 20 MiB each, uncompressed: files
// made of alternating 64 KiB blocks of incompressible bytes and of text,
// so gzip has work on half and compresses the other half. It is
// generated once from a fixed seed into an OCI image layout under the
// work directory (pullVersion names it), and pushed at the start of the
// figure to a fresh Debian docker-registry listening on 127.0.0.1 with its
// storage on the bench's tmpfs.
const (
	pullVersion   = "v2"
	pullLayers    = 10
	pullLayerSize = 20 << 20 // file bytes per layer
	pullFileSize  = 1 << 20
	pullBlock     = 64 << 10
	pullRepo      = "bench/pull"
	// pullRuns is the runs per command: each pull takes seconds, so fewer
	// than the other figures' 30.
	pullRuns = 9
)

// pullTools are the commands figure 8 drives.
var pullTools = []string{registrytest.Bin, "podman", "skopeo", "gzip"}

func (b *bencher) figPull(ctx context.Context) {
	const fig = "8. pull of a 10-layer gzip image from a loopback registry"
	img, err := ensurePullImage(ctx, b.l.pullLayout)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	reg, err := registrytest.Start(ctx, filepath.Join(b.l.tmpfs, "registry"), registrytest.Options{Quiet: true})
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	defer func() {
		if err := reg.Stop(); err != nil {
			logf("%s: %v", fig, err)
		}
	}()
	ref, err := name.NewTag(reg.Host+"/"+pullRepo+":"+pullVersion, name.Insecure)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		b.r.failed(fig, fmt.Errorf("push the pull image to %s: %w", reg.Host, err))
		return
	}
	blobs, largest, compressed, uncompressed, err := pullBlobs(img)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	largestFile := filepath.Join(b.l.pullLayout, "blobs", largest.Algorithm, largest.Hex)

	// Every puller writes to the tmpfs, into a store emptied before each
	// run (untimed).
	nscnDir := filepath.Join(b.l.tmpfs, "pull-nscn")
	skopeoDir := filepath.Join(b.l.tmpfs, "pull-skopeo")
	podmanRoot := filepath.Join(b.l.tmpfs, "pull-podman")
	// podman refuses a run root longer than 50 characters.
	podmanRun, err := os.MkdirTemp("", "nscn-bench-podman-")
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	podman := []string{"podman", "--root", podmanRoot, "--runroot", podmanRun, "--storage-driver=overlay", "--cgroup-manager=cgroupfs", "--events-backend=none"}
	defer func() {
		_ = runQuiet(context.Background(), podman[0], append(podman[1:], "system", "reset", "--force")...)
		_ = os.RemoveAll(podmanRun)
	}()
	image := reg.Host + "/" + pullRepo + ":" + pullVersion
	nscnFetch := b.nscn(nscnDir, "--insecure-options=http,image", "fetch", "docker://"+image)
	podmanPull := append(append([]string{}, podman...), "pull", "-q", "--tls-verify=false", image)
	skopeoCopy := []string{"skopeo", "copy", "--quiet", "--insecure-policy", "--src-tls-verify=false", "docker://" + image, "oci:" + skopeoDir + ":" + pullVersion}
	podmanReset := shellJoin(append(append([]string{}, podman...), "system", "reset", "--force")) + " >/dev/null 2>&1"

	// nscn takes part once it can: before issue #12's registry support
	// is merged, its fetch refuses the docker:// scheme, and the figure
	// measures the others alone.
	// The floor's download and the verifying reference client are this
	// binary (pullClientMain), started by hyperfine like every other
	// command: a process start, fresh connections, and the same load as
	// the runs beside them.
	self, err := os.Executable()
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	urls := make([]string, len(blobs))
	for i, d := range blobs {
		urls[i] = "http://" + reg.Host + "/v2/" + pullRepo + "/blobs/" + d.String()
	}
	verifyDir := filepath.Join(b.l.tmpfs, "pull-verify")
	cmds := []command{
		{name: "podman-pull", argv: podmanPull, prepare: podmanReset},
		{name: "skopeo-copy", argv: skopeoCopy, prepare: "rm -rf " + shellQuote(skopeoDir)},
		{name: "gunzip-largest-layer", argv: []string{"gzip", "-dc", largestFile}},
		{name: "download-every-blob", argv: append([]string{self, pullClientCmd}, urls...)},
		{name: "download-verify-store", argv: append([]string{self, pullClientCmd, "-store", verifyDir}, urls...), prepare: "rm -rf " + shellQuote(verifyDir)},
	}
	var nscnErr error
	if err := runQuiet(ctx, nscnFetch[0], nscnFetch[1:]...); err != nil {
		nscnErr = err
	} else if err := b.checkPulled(ctx, nscnDir, img); err != nil {
		b.r.failed(fig, err)
		return
	} else {
		cmds = append([]command{{name: "nscn-fetch", argv: nscnFetch, prepare: "rm -rf " + shellQuote(nscnDir)}}, cmds...)
	}
	_ = os.RemoveAll(nscnDir)
	// Check once that podman and skopeo pull the image at all, so a
	// broken peer is an error here and not a hyperfine failure later.
	for _, c := range cmds {
		if c.name == "gunzip-largest-layer" || c.name == "nscn-fetch" {
			continue
		}
		if err := runQuiet(ctx, c.argv[0], c.argv[1:]...); err != nil {
			b.r.failed(fig, fmt.Errorf("%s: %w", c.name, err))
			return
		}
	}
	_ = os.RemoveAll(verifyDir)
	runs := pullRuns
	if b.c.quick {
		runs = 3
	}
	s, err := hyperfine(ctx, b.l.scratch, runs, 1, cmds...)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	med := map[string]time.Duration{}
	for _, x := range s {
		med[x.name] = x.median
	}
	podmanT, skopeoT, gunzipT := med["podman-pull"], med["skopeo-copy"], med["gunzip-largest-layer"]
	dl, verifyT := med["download-every-blob"], med["download-verify-store"]
	floor := max(dl, gunzipT)
	r := func(a, p time.Duration) float64 { return float64(a) / float64(p) }
	if nscnErr != nil {
		if !strings.Contains(nscnErr.Error(), "unsupported URL scheme") {
			b.r.failed(fig+" (nscn fetch)", nscnErr)
		} else {
			b.r.add(row{figure: fig + ", nscn fetch", ours: "-", peer: ms(podmanT) + " podman pull", ratio: "-", target: "≤0.80× podman, ≤1.20× floor", status: na})
			b.r.note("8: nscn fetch does not take docker:// references yet (issue #12): %v", nscnErr)
		}
	} else {
		ours := med["nscn-fetch"]
		b.r.add(row{figure: fig + " vs podman pull", ours: ms(ours), peer: ms(podmanT) + " podman pull", ratio: times(r(ours, podmanT)), target: "≤0.80×", status: verdict(r(ours, podmanT) <= 0.8)})
		b.r.add(row{figure: fig + " vs the floor", ours: ms(ours), peer: ms(floor) + " floor", ratio: times(r(ours, floor)), target: "≤1.20×", status: verdict(r(ours, floor) <= 1.2)})
		b.r.add(row{figure: fig + " vs skopeo copy", ours: ms(ours), peer: ms(skopeoT) + " skopeo copy", ratio: times(r(ours, skopeoT)), target: "-", status: info})
		b.r.add(row{figure: fig + " vs download, sha256 and write of every blob", ours: ms(ours), peer: ms(verifyT) + " verify and store", ratio: times(r(ours, verifyT)), target: "-", status: info})
	}
	b.r.add(row{figure: "8. floor: parallel download of every blob, gunzip of the largest layer", ours: ms(dl) + " download", peer: ms(gunzipT) + " gunzip", ratio: "-", target: "-", status: info})
	b.r.add(row{figure: "8. download, sha256 and write of every blob vs the floor's download", ours: ms(verifyT) + " verify and store", peer: ms(dl) + " download", ratio: times(r(verifyT, dl)), target: "-", status: info})
	b.r.add(row{figure: "8. podman pull vs skopeo copy (peers)", ours: ms(podmanT) + " podman", peer: ms(skopeoT) + " skopeo", ratio: times(r(podmanT, skopeoT)), target: "-", status: info})
	b.r.note("8: image %s: %d gzip layers, %s uncompressed, %s compressed (generated once from a fixed seed: files of alternating 64 KiB blocks of random bytes and repetitive text), pushed to Debian's docker-registry on %s (plain http, storage on tmpfs). Each run starts from an empty store on the same tmpfs, emptied before the run (untimed): `nscn --dir=DIR --insecure-options=http,image fetch docker://…`; `podman --root DIR --runroot DIR --storage-driver=overlay pull --tls-verify=false …` (its store reset with `podman system reset --force`); `skopeo copy --src-tls-verify=false docker://… oci:DIR` (copies the blobs, decompresses nothing). Medians over %d runs each. The floor is the larger of: every blob downloaded at once by Go's HTTP client (nscn's), bodies discarded; `gzip -dc` of the largest layer (%s compressed), output discarded. The verify-and-store row is the same download with each body hashed (sha256) as it streams into a file on the same tmpfs, fsynced and checked against its digest: the work any puller that verifies and keeps every blob does, without decompressing. Both are `nscn-bench pull-client`, a process of its own timed by hyperfine in the same invocation as the pullers.",
		pullRepo+":"+pullVersion, pullLayers, mb(float64(uncompressed)), mb(float64(compressed)), reg.Host, runs, mb(float64(fileSize(largestFile))))
}

// checkPulled checks once that nscn's store in dir lists the image by its
// manifest digest: an exit status alone would time a fetch that stored
// nothing.
func (b *bencher) checkPulled(ctx context.Context, dir string, img v1.Image) error {
	d, err := img.Digest()
	if err != nil {
		return err
	}
	list, err := b.nscnOut(ctx, dir, "image", "list", "--format=json")
	if err != nil {
		return err
	}
	if !strings.Contains(list, d.String()) {
		return fmt.Errorf("nscn fetch exited 0 but image list does not show %s:\n%s", d, list)
	}
	return nil
}

// pullBlobs returns the blobs of the image (config and layers) a puller
// downloads, the largest layer's digest, and the image's compressed and
// uncompressed layer bytes.
func pullBlobs(img v1.Image) (blobs []v1.Hash, largest v1.Hash, compressed, uncompressed int64, err error) {
	cfg, err := img.ConfigName()
	if err != nil {
		return nil, largest, 0, 0, err
	}
	blobs = append(blobs, cfg)
	m, err := img.Manifest()
	if err != nil {
		return nil, largest, 0, 0, err
	}
	var biggest int64
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest)
		compressed += l.Size
		if l.Size > biggest {
			biggest, largest = l.Size, l.Digest
		}
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, largest, 0, 0, err
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, largest, 0, 0, err
		}
		n, err := io.Copy(io.Discard, rc)
		_ = rc.Close()
		if err != nil {
			return nil, largest, 0, 0, err
		}
		uncompressed += n
	}
	return blobs, largest, compressed, uncompressed, nil
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// ensurePullImage returns the pull figure's image from its OCI layout,
// generating the layout first unless a complete one is there.
func ensurePullImage(ctx context.Context, dir string) (v1.Image, error) {
	done := filepath.Join(dir, ".complete")
	if _, err := os.Stat(done); err != nil {
		logf("building %s (once; kept for later runs)", dir)
		start := time.Now()
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := writePullLayout(ctx, dir); err != nil {
			return nil, fmt.Errorf("pull image: %w", err)
		}
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			return nil, err
		}
		logf("built %s in %s", dir, time.Since(start).Round(time.Millisecond))
	}
	idx, err := ocilayout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("pull image: %w", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("pull image: %w", err)
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("pull image %s: %d manifests, want one", dir, len(m.Manifests))
	}
	return idx.Image(m.Manifests[0].Digest)
}

// writePullLayout generates the layers (seeded) and writes the image as
// an OCI image layout.
func writePullLayout(ctx context.Context, dir string) error {
	g := newGen()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{Cmd: []string{"/bin/sh"}}})
	if err != nil {
		return err
	}
	for i := range pullLayers {
		if err := ctx.Err(); err != nil {
			return err
		}
		gz, err := pullLayer(g, i)
		if err != nil {
			return err
		}
		// The bytes are gzip already: the layer is them as they are.
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz)), nil })
		if err != nil {
			return err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return err
		}
	}
	p, err := ocilayout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}

// pullLayer is layer i: pullLayerSize bytes of files under /layerI, gzip.
func pullLayer(g *gen, i int) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	mtime := time.Unix(1700000000, 0)
	top := fmt.Sprintf("layer%d", i)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + "/", Mode: 0o755, ModTime: mtime}); err != nil {
		return nil, err
	}
	for f := range pullLayerSize / pullFileSize {
		data := make([]byte, 0, pullFileSize)
		for k := 0; len(data) < pullFileSize; k++ {
			if k%2 == 0 {
				data = append(data, g.content(pullBlock, kindRandom)...)
			} else {
				data = append(data, repetitive(pullBlock, f*pullFileSize+len(data))...)
			}
		}
		if err := writeEntry(tw, &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s/%s-%d", top, g.word(), f), Mode: 0o644, ModTime: mtime}, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// repetitive is size bytes of numbered lines of one sentence: text that
// gzip compresses about tenfold, unlike the generator's word salad.
func repetitive(size, n int) []byte {
	b := make([]byte, 0, size+64)
	for len(b) < size {
		b = fmt.Appendf(b, "%09d the registry serves this line again and again\n", n)
		n++
	}
	return b[:size]
}
