package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/nosecone/nscn/internal/aci"
)

// The large image of the import and render figures. Its content is a
// function of bigVersion alone (a seeded generator), so it is built once
// and kept under the work directory; bump the version to change it.
const (
	bigVersion = "v1"
	bigName    = "nosecone.dev/bench-big"
	// bigTarget is the file bytes the generator stops at; with the tar
	// framing the image is just over the 200 MiB the figures need.
	bigTarget = 204 << 20
)

// layout names the paths under the work directory.
type layout struct {
	work   string
	bigACI string // cached gzip ACI of about 210 MiB uncompressed
	// pullLayout is the cached OCI image layout of the pull figure.
	pullLayout string
	scratch    string // everything below is removed after a run
	tmpfs      string // mount point of a tmpfs (import, render)
	bundle     string // OCI bundle of the busybox rootfs (crun, runc, chroot)
	fly        string // nscn data dir of the run and memory figures
	net        string // nscn data dir of the networking figure
	scale      string // nscn data dir of the scale figure (its large count of pods)
	scaleSmall string // the scale figure's data dir of 10 pods, for rm
	local      string // empty --local-config
	system     string // empty --system-config
	memcg      string // mount point of the cgroup v1 memory hierarchy
}

func newLayout(work string) layout {
	s := filepath.Join(work, "scratch")
	return layout{
		work:       work,
		bigACI:     filepath.Join(work, "big-"+bigVersion+".aci"),
		pullLayout: filepath.Join(work, "pull-"+pullVersion),
		scratch:    s,
		tmpfs:      filepath.Join(s, "tmpfs"),
		bundle:     filepath.Join(s, "bundle"),
		fly:        filepath.Join(s, "fly"),
		net:        filepath.Join(s, "net"),
		scale:      filepath.Join(s, "scale"),
		scaleSmall: filepath.Join(s, "scale-small"),
		local:      filepath.Join(s, "etc"),
		system:     filepath.Join(s, "lib"),
		memcg:      filepath.Join(s, "memcg"),
	}
}

// removeScratch removes the scratch directories. It runs outside the
// bench's mount namespace, after it is gone, so no pod mount is left below.
func removeScratch(work string) error {
	return os.RemoveAll(newLayout(work).scratch)
}

// ensureBigACI builds the large image unless a complete one is cached. It
// returns the uncompressed size of the tar.
func ensureBigACI(ctx context.Context, path string) (int64, error) {
	sizeFile := path + ".size"
	if b, err := os.ReadFile(sizeFile); err == nil { //nolint:gosec // G304: the bench's own work files
		var n int64
		if _, err := fmt.Sscan(string(b), &n); err == nil {
			if _, err := os.Stat(path); err == nil {
				return n, nil
			}
		}
	}
	logf("building %s (once; kept for later runs)", path)
	start := time.Now()
	tmp := path + ".tmp"
	n, err := writeBigACI(ctx, tmp)
	if err != nil {
		_ = os.Remove(tmp)
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("big image: %w", err)
	}
	if err := os.WriteFile(sizeFile, fmt.Appendf(nil, "%d\n", n), 0o644); err != nil {
		return 0, fmt.Errorf("big image: %w", err)
	}
	logf("built %s: %.0f MB uncompressed in %s", path, float64(n)/1e6, time.Since(start).Round(time.Millisecond))
	return n, nil
}

// countingWriter counts what goes through it: the uncompressed tar.
type countingWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeBigACI writes a gzip ACI whose rootfs looks like a distribution
// image: about 4,000 small files (configuration, scripts: text) and a
// hundred-odd large ones (libraries and data: a mix of text, low-entropy
// binary and incompressible bytes), in a few hundred directories, with
// some symlinks. gzip compresses it about 1.8:1.
func writeBigACI(ctx context.Context, path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644) //nolint:gosec // G304: the bench's own work files
	if err != nil {
		return 0, fmt.Errorf("big image: %w", err)
	}
	defer func() { _ = f.Close() }()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw := gzip.NewWriter(bw)
	cw := &countingWriter{w: bufio.NewWriterSize(zw, 1<<20)}
	g := newGen()
	mtime := time.Unix(1700000000, 0)

	manifest, err := json.Marshal(map[string]any{
		"acKind":    "ImageManifest",
		"acVersion": "0.8.11",
		"name":      bigName,
		"labels": []map[string]string{
			{"name": "version", "value": bigVersion},
			{"name": "os", "value": "linux"},
			{"name": "arch", "value": "amd64"},
		},
	})
	if err != nil {
		return 0, err
	}
	// Uncompressed: cw counts the tar before gzip.
	aw, err := aci.NewWriter(cw, manifest, aci.WriteOptions{ModTime: mtime})
	if err != nil {
		return 0, fmt.Errorf("big image: %w", err)
	}
	var dirs []string
	addDir := func(name string) error {
		dirs = append(dirs, name)
		return addEntry(aw, &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: mtime}, nil)
	}
	if err := addDir("rootfs"); err != nil {
		return 0, err
	}
	for _, top := range []string{"bin", "etc", "lib", "share", "opt"} {
		if err := addDir("rootfs/" + top); err != nil {
			return 0, err
		}
		for i := range 8 {
			sub := fmt.Sprintf("rootfs/%s/%s%d", top, g.word(), i)
			if err := addDir(sub); err != nil {
				return 0, err
			}
			for j := range 6 {
				if err := addDir(fmt.Sprintf("%s/%s%d", sub, g.word(), j)); err != nil {
					return 0, err
				}
			}
		}
	}

	var files []string
	var total int64
	addFile := func(size int, kind int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := fmt.Sprintf("%s/%s-%d", dirs[1+g.r.IntN(len(dirs)-1)], g.word(), len(files))
		files = append(files, name)
		mode := int64(0o644)
		if kind != kindText && g.r.IntN(4) == 0 {
			mode = 0o755
		}
		total += int64(size)
		return addEntry(aw, &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, ModTime: mtime}, g.content(size, kind))
	}
	// Small files: 100 B to 16 KiB, log-uniform, text.
	for range 4000 {
		if err := addFile(g.logUniform(100, 16<<10), kindText); err != nil {
			return 0, err
		}
	}
	// Large files until the target: 64 KiB to 8 MiB, log-uniform; half
	// text, a third low-entropy binary, the rest incompressible.
	for total < bigTarget {
		kind := kindText
		switch k := g.r.IntN(6); {
		case k >= 3 && k < 5:
			kind = kindBinary
		case k == 5:
			kind = kindRandom
		}
		if err := addFile(g.logUniform(64<<10, 8<<20), kind); err != nil {
			return 0, err
		}
	}
	for i := range 200 {
		target := files[g.r.IntN(len(files))]
		rel, err := filepath.Rel("rootfs/bin", target)
		if err != nil {
			return 0, err
		}
		h := &tar.Header{Typeflag: tar.TypeSymlink, Name: fmt.Sprintf("rootfs/bin/link-%d", i), Linkname: rel, Mode: 0o777, ModTime: mtime}
		if err := aw.Add(h, nil); err != nil {
			return 0, fmt.Errorf("big image: %w", err)
		}
	}
	for _, step := range []func() error{aw.Close, cw.w.Flush, zw.Close, bw.Flush, f.Sync, f.Close} {
		if err := step(); err != nil {
			return 0, fmt.Errorf("big image: %w", err)
		}
	}
	return cw.n, nil
}

// addEntry adds one rootfs entry of the big image, data its content.
func addEntry(aw *aci.Writer, h *tar.Header, data []byte) error {
	h.Size = int64(len(data))
	h.Format = tar.FormatUSTAR
	if err := aw.Add(h, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("big image: %w", err)
	}
	return nil
}

// writeEntry writes one entry of an OCI layer (figpull), data its
// content.
func writeEntry(tw *tar.Writer, h *tar.Header, data []byte) error {
	h.Size = int64(len(data))
	h.Format = tar.FormatUSTAR
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("big image: %s: %w", h.Name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("big image: %s: %w", h.Name, err)
	}
	return nil
}

const (
	kindText = iota
	kindBinary
	kindRandom
)

// gen is the seeded content generator.
type gen struct {
	r     *rand.Rand
	words []string
}

func newGen() *gen {
	g := &gen{r: rand.New(rand.NewPCG(0x6e73636e, 0x62656e63))} //nolint:gosec // G404: deterministic data from a fixed seed, not a secret
	const letters = "abcdefghijklmnopqrstuvwxyz"
	for range 4096 {
		b := make([]byte, 3+g.r.IntN(8))
		for i := range b {
			b[i] = letters[g.r.IntN(len(letters))]
		}
		g.words = append(g.words, string(b))
	}
	return g
}

func (g *gen) word() string { return g.words[g.r.IntN(len(g.words))] }

func (g *gen) logUniform(lo, hi int) int {
	return int(math.Exp(math.Log(float64(lo)) + g.r.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
}

// content returns size bytes of one kind: text (lines of words from a
// small vocabulary, with numbers), low-entropy binary (bytes from a skewed
// 16-value alphabet), or incompressible bytes.
func (g *gen) content(size, kind int) []byte {
	b := make([]byte, 0, size+64)
	switch kind {
	case kindText:
		for len(b) < size {
			n := 4 + g.r.IntN(10)
			for i := range n {
				if i > 0 {
					b = append(b, ' ')
				}
				if g.r.IntN(8) == 0 {
					b = fmt.Appendf(b, "%d", g.r.IntN(100000))
				} else {
					b = append(b, g.word()...)
				}
			}
			b = append(b, '\n')
		}
	case kindBinary:
		alphabet := [16]byte{0, 0, 0, 0, 0xff, 0x48, 0x89, 0x8b, 0x0f, 0xe8, 0x24, 0x44, 0x01, 0x10, 0xc3, 0x90}
		for len(b) < size {
			v := g.r.Uint64()
			for i := 0; i < 16 && len(b) < size; i++ {
				b = append(b, alphabet[v&15])
				v >>= 4
			}
		}
	default:
		for len(b) < size {
			v := g.r.Uint64()
			for i := 0; i < 8 && len(b) < size; i++ {
				b = append(b, byte(v))
				v >>= 8
			}
		}
	}
	return b[:size]
}

// ociConfig is the runtime spec crun and runc get: the app and the mounts
// of a fly pod (stage1-fly.md, "Mounts": proc, /sys read-only, /dev, a
// tmpfs on /tmp) in a mount namespace only, as fly has. No network, PID,
// IPC, UTS, user or cgroup namespace; no masked or read-only paths, no
// seccomp; the spec's default capability set is left to the runtime.
const ociConfig = `{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["/bin/true"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "cwd": "/"
  },
  "root": {"path": "rootfs", "readonly": false},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "nodev", "noexec"]},
    {"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "ro"]},
    {"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind", "rw"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}
  ],
  "linux": {
    "namespaces": [{"type": "mount"}]
  }
}
`

// makeBundle extracts the busybox image's rootfs (as the pods get it)
// into an OCI bundle with ociConfig.
func makeBundle(ctx context.Context, aci, bundle string) error {
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := runQuiet(ctx, "tar", "-x", "-z", "--same-owner", "-p", "-f", aci, "-C", bundle, "rootfs"); err != nil {
		return fmt.Errorf("bundle: extract %s: %w", aci, err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(ociConfig), 0o644); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}
