//go:build functional

package cri

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// defaultPath is the PATH of every stand-in, as in the busybox image.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// epoch is every file's and image's time: the same inputs make the same
// digests, run after run.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// entry is one member of a layer's tar.
type entry struct {
	name string // relative, no leading slash
	mode int64  // permission bits, with setuid
	data []byte // a regular file's content
	link string // a symlink's target
	hard string // a hard link's target, in the same layer
	dir  bool
	uid  int
}

func dirEntry(name string, mode int64) entry { return entry{name: name, mode: mode, dir: true} }
func fileEntry(name string, mode int64, data []byte) entry {
	return entry{name: name, mode: mode, data: data}
}
func linkEntry(name, target string) entry { return entry{name: name, mode: 0o777, link: target} }

// layer makes a gzip layer of the entries, in order.
func layer(entries ...entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Uid: e.uid, Gid: e.uid, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		case e.hard != "":
			h.Typeflag, h.Linkname = tar.TypeLink, e.hard
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// The accounts of the busybox image, and of the images made from it.
const (
	passwd = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n" +
		"bin:x:2:2:bin:/bin:/bin/false\nsys:x:3:3:sys:/dev:/bin/false\nsync:x:4:100:sync:/bin:/bin/sync\n" +
		"mail:x:8:8:mail:/var/spool/mail:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\n" +
		"operator:x:37:37:Operator:/var:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
	group = "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\nlp:x:7:\n" +
		"mail:x:8:\nkmem:x:9:\nwheel:x:10:root\ncdrom:x:11:\ndialout:x:18:\nfloppy:x:19:\nvideo:x:28:\n" +
		"audio:x:29:\ntape:x:32:\nwww-data:x:33:\noperator:x:37:\nutmp:x:45:\nusers:x:100:\nstaff:x:50:\n" +
		"nogroup:x:65534:\n"
)

// hostPrograms are programs of the host's Debian packages that the
// stand-ins carry besides busybox, which lacks them and which specs run:
// util-linux's ipcs (the host-IPC specs: ipcs -m) and procps's pgrep (the
// exec-timeout spec).
var hostPrograms = []string{"/usr/bin/ipcs", "/usr/bin/pgrep"}

// standins are the inputs of the stand-in images: Debian's busybox (the
// dynamically linked one of package busybox, scripts/cri/fetch-busybox.sh),
// hostPrograms, the libraries these link (the host's, by ldd), and the
// standin program (pause, nnp).
type standins struct {
	busybox, standin []byte
	applets          []string // busybox --list-full: bin/sh, usr/bin/top, …
	files            map[string][]byte
	paths            []string // the keys of files, sorted
}

func readStandins(ctx context.Context, busyboxBin, standinBin string) (*standins, error) {
	s := &standins{}
	var err error
	if s.busybox, err = os.ReadFile(busyboxBin); err != nil { //nolint:gosec // G304: the busybox make fetched
		return nil, err
	}
	if s.standin, err = os.ReadFile(standinBin); err != nil { //nolint:gosec // G304: the program make built
		return nil, err
	}
	out, err := exec.CommandContext(ctx, busyboxBin, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	s.applets = strings.Fields(string(out))
	sort.Strings(s.applets)
	s.files = map[string][]byte{}
	for _, p := range append([]string{busyboxBin}, hostPrograms...) {
		libs, err := sharedLibs(ctx, p)
		if err != nil {
			return nil, err
		}
		files := libs
		if p != busyboxBin {
			files = append(files, p)
		}
		for _, f := range files {
			if s.files[f] != nil {
				continue
			}
			// ReadFile follows the library links: the image gets the files.
			if s.files[f], err = os.ReadFile(f); err != nil { //nolint:gosec // G304: host programs and their libraries
				return nil, err
			}
			s.paths = append(s.paths, f)
		}
	}
	sort.Strings(s.paths)
	return s, nil
}

// sharedLibs is what ldd says prog loads: each library's path, and the
// dynamic loader's.
func sharedLibs(ctx context.Context, prog string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", prog).Output() //nolint:gosec // G204: ldd of busybox and hostPrograms
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", prog, err)
	}
	var libs []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}

// key is a digest of the inputs and of this file's recipe version: the
// cached registry storage is reused while it matches.
func (s *standins) key() string {
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "recipe 3\n")
	h.Write(s.busybox)
	h.Write(s.standin)
	for _, f := range s.paths {
		_, _ = fmt.Fprintf(h, "%s\n", f)
		h.Write(s.files[f])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// base is the busybox layer: busybox, a hard link for each applet (as in
// the busybox image: masking /bin/ls must not mask busybox), the
// directories and accounts of the busybox image, extra passwd and group
// lines appended, and hostPrograms with the libraries.
func (s *standins) base(extraPasswd, extraGroup string) (v1.Layer, error) {
	es := []entry{}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "etc", "root", "home", "var", "var/run", "var/www", "dev", "proc", "sys"} {
		es = append(es, dirEntry(d, 0o755))
	}
	es = append(es, dirEntry("tmp", 0o1777), fileEntry("bin/busybox", 0o755, s.busybox),
		fileEntry("etc/passwd", 0o644, []byte(passwd+extraPasswd)), fileEntry("etc/group", 0o644, []byte(group+extraGroup)))
	dirs := map[string]bool{}
	for _, e := range es {
		dirs[e.name] = true
	}
	var extra []string // the libraries' directories, parents first once sorted
	for _, f := range s.paths {
		for d := path.Dir(f); d != "/"; d = path.Dir(d) {
			if !dirs[d[1:]] {
				dirs[d[1:]] = true
				extra = append(extra, d[1:])
			}
		}
	}
	sort.Strings(extra)
	for _, d := range extra {
		es = append(es, dirEntry(d, 0o755))
	}
	for _, f := range s.paths {
		es = append(es, fileEntry(f[1:], 0o755, s.files[f]))
	}
	for _, a := range s.applets {
		a = strings.TrimPrefix(a, "/")
		if a == "bin/busybox" || s.files["/"+a] != nil {
			continue
		}
		es = append(es, entry{name: a, mode: 0o755, hard: "bin/busybox"})
	}
	return layer(es...)
}

// image makes an amd64 linux image of cfg and the layers.
func image(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	if cfg.Env == nil {
		cfg.Env = []string{defaultPath}
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "linux", Architecture: "amd64", Created: v1.Time{Time: epoch}, Config: cfg,
	})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, layers...)
}

// webServer is a layer with an nginx-like server on port: /usr/sbin/nginx
// is busybox's httpd under the name nginx (pidof nginx finds it by its
// comm), its argv[0] "nginx: master process /httpd" (busybox picks the
// applet by the last path element; the PID-namespace specs look for
// "master process" in /proc/1/cmdline), started by a script that writes
// its pid to /var/run/nginx.pid, as the host-PID specs read it.
func webServer(port int) (v1.Layer, v1.Config, error) {
	script := fmt.Sprintf("#!/bin/sh\necho $$ > /var/run/nginx.pid\nexec -a 'nginx: master process /httpd' /usr/sbin/nginx -f -p %d -h /usr/share/nginx/html\n", port)
	l, err := layer(dirEntry("usr/share", 0o755), dirEntry("usr/share/nginx", 0o755), dirEntry("usr/share/nginx/html", 0o755),
		fileEntry("usr/share/nginx/html/index.html", 0o644, []byte("<html><body>Welcome to nginx (a stand-in)</body></html>\n")),
		linkEntry("usr/sbin/nginx", "/bin/busybox"),
		fileEntry("docker-entrypoint.sh", 0o755, []byte(script)))
	return l, v1.Config{
		Entrypoint: []string{"/docker-entrypoint.sh"}, ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", port): {}},
		StopSignal: "SIGQUIT",
	}, err
}

// standinImages are the images critest v1.37.0 pulls, by reference
// (pkg/validate/consts.go, pkg/framework/util.go), each made to behave as
// the specs expect of the real one. The digest-pinned test-image-digest
// cannot be made: its digest is upstream's.
func (s *standins) images() (map[string]v1.Image, error) {
	base, err := s.base("", "")
	if err != nil {
		return nil, err
	}
	imgs := map[string]v1.Image{}
	var errs []error
	add := func(refs []string, img v1.Image, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", refs[0], err))
			return
		}
		for _, r := range refs {
			imgs[r] = img
		}
	}
	withFile := func(file string) (v1.Image, error) {
		l, err := layer(fileEntry(file, 0o644, []byte(file+"\n")))
		if err != nil {
			return nil, err
		}
		return image(v1.Config{Cmd: []string{"sh"}}, base, l)
	}

	const e2e, staging = "registry.k8s.io/e2e-test-images/", "gcr.io/k8s-staging-cri-tools/"
	img, err := image(v1.Config{Cmd: []string{"sh"}}, base)
	add([]string{e2e + "busybox:1.29-2"}, img, err)

	web, cfg, err := webServer(80)
	if err == nil {
		img, err = image(cfg, base, web)
	}
	add([]string{e2e + "nginx:1.14-2"}, img, err)
	web, cfg, err = webServer(12003)
	if err == nil {
		img, err = image(cfg, base, web)
	}
	add([]string{staging + "hostnet-nginx-amd64:latest"}, img, err)

	// httpd: busybox's httpd on :80, announcing itself on stderr as
	// Apache's does (the multi-container spec looks for "httpd" in its log).
	l, err := layer(dirEntry("usr/local/apache2", 0o755), dirEntry("usr/local/apache2/htdocs", 0o755),
		fileEntry("usr/local/apache2/htdocs/index.html", 0o644, []byte("<html><body><h1>It works!</h1></body></html>\n")),
		fileEntry("usr/local/bin/httpd-foreground", 0o755, []byte("#!/bin/sh\necho 'httpd (a stand-in): serving /usr/local/apache2/htdocs on :80' >&2\nexec httpd -f -v -p 80 -h /usr/local/apache2/htdocs\n")))
	if err == nil {
		img, err = image(v1.Config{Cmd: []string{"httpd-foreground"}, ExposedPorts: map[string]struct{}{"80/tcp": {}}}, base, l)
	}
	add([]string{e2e + "httpd:2.4.39-4"}, img, err)

	// nonewprivs: a setuid-root program that prints its effective uid.
	l, err = layer(fileEntry("usr/local/bin/nnp", 0o4755, s.standin))
	if err == nil {
		img, err = image(v1.Config{Entrypoint: []string{"/usr/local/bin/nnp"}}, base, l)
	}
	add([]string{e2e + "nonewprivs:1.3"}, img, err)

	// pause: the same image under both registries.
	l, err = layer(fileEntry("pause", 0o755, s.standin))
	if err == nil {
		img, err = image(v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535", Env: []string{defaultPath}}, l)
	}
	add([]string{"registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"}, img, err)

	// The image-user images: busybox with USER set.
	for repo, user := range map[string]string{
		"test-image-user-uid": "1002", "test-image-user-username": "www-data",
		"test-image-user-uid-group": "1003:users", "test-image-user-username-group": "www-data:www-data",
	} {
		img, err := image(v1.Config{Cmd: []string{"sh"}, User: user}, base)
		add([]string{staging + repo + ":latest"}, img, err)
	}
	// test-image-predefined-group: default-user (1000) in a group the
	// image defines (50000), USER 1000.
	pg, err := s.base("default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n",
		"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")
	if err == nil {
		img, err = image(v1.Config{Cmd: []string{"sh"}, User: "1000"}, pg)
	}
	add([]string{staging + "test-image-predefined-group:latest"}, img, err)

	// The image-test images: busybox with one file each; tags 1, 2 and 3
	// of test-image-tags are one image.
	for ref, file := range map[string]string{
		"test-image-latest:latest": "test-image-latest", "test-image-tag:test": "test-image-tag-test",
		"test-image-tag:all": "test-image-tag-all", "test-image-1:latest": "test-image-1",
		"test-image-2:latest": "test-image-2", "test-image-3:latest": "test-image-3",
	} {
		img, err := withFile(file)
		add([]string{staging + ref}, img, err)
	}
	img, err = withFile("test-image-tags")
	add([]string{staging + "test-image-tags:1", staging + "test-image-tags:2", staging + "test-image-tags:3"}, img, err)
	if len(errs) > 0 {
		return nil, fmt.Errorf("stand-in images: %v", errs)
	}
	return imgs, nil
}

// push writes every image under its reference; the names resolve to the
// loopback registry through the namespace's /etc/hosts.
func push(ctx context.Context, imgs map[string]v1.Image, tr http.RoundTripper) error {
	refs := make([]string, 0, len(imgs))
	for r := range imgs {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		ref, err := name.ParseReference(r, name.StrictValidation)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, imgs[r], remote.WithContext(ctx), remote.WithTransport(tr)); err != nil {
			return fmt.Errorf("push %s: %w", r, err)
		}
	}
	return nil
}

// TestStandinImages checks the recipe against what the specs read from
// the images' configs and names, without a registry: one image under the
// names that must share it, different images where they must differ, the
// users of the image-user specs.
func TestStandinImages(t *testing.T) {
	st, err := readStandins(t.Context(), mustEnv(t, "NSCN_CRI_BUSYBOX"), mustEnv(t, "NSCN_CRI_STANDIN"))
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := st.images()
	if err != nil {
		t.Fatal(err)
	}
	const staging = "gcr.io/k8s-staging-cri-tools/"
	digest := func(ref string) string {
		t.Helper()
		img := imgs[ref]
		if img == nil {
			t.Fatalf("no stand-in for %s", ref)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	for _, tc := range []struct {
		name string
		refs []string
		same bool
	}{
		{name: "pause in both registries", refs: []string{"registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"}, same: true},
		{name: "tags 1, 2 and 3", refs: []string{staging + "test-image-tags:1", staging + "test-image-tags:2", staging + "test-image-tags:3"}, same: true},
		{name: "images 1, 2 and 3", refs: []string{staging + "test-image-1:latest", staging + "test-image-2:latest", staging + "test-image-3:latest"}},
		{name: "tag test and tag all", refs: []string{staging + "test-image-tag:test", staging + "test-image-tag:all"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, r := range tc.refs {
				seen[digest(r)] = true
			}
			if tc.same && len(seen) != 1 || !tc.same && len(seen) != len(tc.refs) {
				t.Fatalf("%v: %d digests, want same=%v", tc.refs, len(seen), tc.same)
			}
		})
	}
	for ref, user := range map[string]string{
		staging + "test-image-user-uid:latest": "1002", staging + "test-image-user-username:latest": "www-data",
		staging + "test-image-user-uid-group:latest": "1003:users", staging + "test-image-user-username-group:latest": "www-data:www-data",
		staging + "test-image-predefined-group:latest": "1000",
	} {
		t.Run("user of "+ref, func(t *testing.T) {
			cf, err := imgs[ref].ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Config.User != user {
				t.Fatalf("user %q, want %q", cf.Config.User, user)
			}
		})
	}
	// Every image critest v1.37.0 pulls by tag has a stand-in.
	for _, ref := range []string{
		"registry.k8s.io/e2e-test-images/busybox:1.29-2", "registry.k8s.io/e2e-test-images/nginx:1.14-2",
		"registry.k8s.io/e2e-test-images/httpd:2.4.39-4", "registry.k8s.io/e2e-test-images/nonewprivs:1.3",
		staging + "hostnet-nginx-amd64:latest", staging + "test-image-latest:latest",
	} {
		digest(ref)
	}
	if got := len(imgs); got != 21 {
		t.Errorf("%d stand-ins, want 21", got)
	}
}
