// Package stage1 is stage0's side of the stage1 ABI: it picks the stage1
// image for a pod (the --stage1-* flags, stage1.d configuration, the build's
// default), reads its entrypoints and interface version from the image
// manifest, builds each entrypoint's argv, and execs or runs it in the pod
// directory.
//
// It runs in stage0. It never enters the pod's namespaces; that is the
// stage1's job.
package stage1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/configdir"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/store"
)

// DefaultImage is the file name of the default stage1 image, looked up
// beside the nscn binary and in the system image directory. A distribution
// may change it at build time with -ldflags -X.
var DefaultImage = "stage1-nspawn.aci"

// SystemImageDir is the directory of the stage1 images that ship with nscn:
// where the nscn-stage1-* Debian packages, and `make install` with its
// PREFIX, put them. The Makefile sets it with -ldflags -X (its STAGE1_DIR,
// $(PREFIX)/lib/nscn/stage1-images); a paths.d stage1-images entry in
// the config dirs overrides it at run time (ImageDirs).
var SystemImageDir = "/usr/lib/nscn/stage1-images"

// RefKind says how a stage1 image is named.
type RefKind string

// The ways to name a stage1 image, one per --stage1-* flag.
const (
	FromDir RefKind = "from-dir" // a file name in the stage1 image directories
	Path    RefKind = "path"     // a path to an ACI
	URL     RefKind = "url"      // a URL
	Name    RefKind = "name"     // an image name already in the store
	Hash    RefKind = "hash"     // an image ID
)

// Ref names a stage1 image.
type Ref struct {
	Kind  RefKind
	Value string
	// Trusted images ship with nscn or were configured by the
	// administrator; their signatures are not checked.
	Trusted bool
}

// String formats the ref as the flag that would name it.
func (r Ref) String() string { return fmt.Sprintf("--stage1-%s=%s", r.Kind, r.Value) }

// Selection is what the user asked for: at most one flag set.
type Selection struct {
	FromDir, Path, URL, Name, Hash string
}

// Choose turns the flags into a Ref, falling back to the configured default
// (stage1.d in the config dirs) and then to the build's default image.
func Choose(sel Selection, configDirs []string, binDir string) (Ref, error) {
	var set []Ref
	for _, r := range []Ref{
		{Kind: FromDir, Value: sel.FromDir, Trusted: true},
		{Kind: Path, Value: sel.Path},
		{Kind: URL, Value: sel.URL},
		{Kind: Name, Value: sel.Name},
		{Kind: Hash, Value: sel.Hash},
	} {
		if r.Value != "" {
			set = append(set, r)
		}
	}
	if len(set) > 1 {
		return Ref{}, errdefs.InvalidArgument("%s and %s both choose the stage1 image; use one", set[0], set[1])
	}
	if len(set) == 1 {
		r := set[0]
		if r.Kind == FromDir {
			p, err := findInDirs(r.Value, configDirs, binDir)
			if err != nil {
				return Ref{}, err
			}
			return Ref{Kind: Path, Value: p, Trusted: true}, nil
		}
		return r, nil
	}
	if r, _, ok, err := Configured(configDirs); err != nil || ok {
		return r, err
	}
	p, err := findInDirs(DefaultImage, configDirs, binDir)
	if err != nil {
		return Ref{}, fmt.Errorf("default stage1 image: %w", err)
	}
	return Ref{Kind: Path, Value: p, Trusted: true}, nil
}

// findInDirs looks for a stage1 image file in the directories ImageDirs
// returns: beside the nscn binary, then in the configured or compiled-in
// image directory.
func findInDirs(name string, configDirs []string, binDir string) (string, error) {
	if strings.ContainsRune(name, '/') {
		return "", errdefs.InvalidArgument("--stage1-from-dir takes a file name, not a path: %q", name)
	}
	dirs, err := ImageDirs(configDirs, binDir)
	if err != nil {
		return "", err
	}
	var tried []string
	for _, d := range dirs {
		p := filepath.Join(d, name)
		tried = append(tried, p)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errdefs.NotFound("stage1 image %s not found (looked at %s)", name, strings.Join(tried, ", "))
}

// configEntry is one stage1.d file: the default stage1 image chosen by the
// administrator, in the spirit of rkt's stage1 configuration.
type configEntry struct {
	Kind     string `json:"nscnKind"`
	Version  string `json:"nscnVersion"`
	Location string `json:"location"` // path or URL of the image
	Name     string `json:"name,omitempty"`
	// rkt's stage1.d files, read as they are: rktKind and rktVersion
	// instead of nscn's keys, and the image's version beside its name.
	RktKind      string `json:"rktKind,omitempty"`
	RktVersion   string `json:"rktVersion,omitempty"`
	ImageVersion string `json:"version,omitempty"`
}

// Configured reads the default stage1 from <dir>/stage1.d/*.json; the
// local config dir (first) wins over the system one, and within a dir only
// the file whose name sorts last is read (Documentation/stage1-abi.md). It
// returns the file read, and ok false when no dir has one.
func Configured(dirs []string) (ref Ref, file string, ok bool, err error) {
	for _, d := range dirs {
		files, err := configdir.Read(filepath.Join(d, "stage1.d"), "stage1 configuration")
		if err != nil {
			return Ref{}, "", false, err
		}
		if len(files) == 0 {
			continue
		}
		// The file whose name sorts last.
		file, b := files[len(files)-1].Path, files[len(files)-1].Data
		var c configEntry
		if err := json.Unmarshal(b, &c); err != nil {
			return Ref{}, "", false, errdefs.InvalidArgument("stage1 configuration %s: %v", file, err)
		}
		if c.Kind == "" && c.Version == "" {
			c.Kind, c.Version = c.RktKind, c.RktVersion
		}
		if c.Kind != "stage1" || c.Version != "v1" {
			return Ref{}, "", false, errdefs.InvalidArgument(`stage1 configuration %s: want "nscnKind": "stage1", "nscnVersion": "v1" (or rkt's rktKind and rktVersion)`, file)
		}
		if c.Name != "" && c.ImageVersion != "" {
			c.Name += ":" + c.ImageVersion
		}
		switch {
		case strings.HasPrefix(c.Location, "http://"), strings.HasPrefix(c.Location, "https://"):
			return Ref{Kind: URL, Value: c.Location, Trusted: true}, file, true, nil
		case c.Location != "":
			return Ref{Kind: Path, Value: strings.TrimPrefix(c.Location, "file://"), Trusted: true}, file, true, nil
		case c.Name != "":
			return Ref{Kind: Name, Value: c.Name, Trusted: true}, file, true, nil
		}
		return Ref{}, "", false, errdefs.InvalidArgument("stage1 configuration %s: neither location nor name is set", file)
	}
	return Ref{}, "", false, nil
}

// Entrypoints are the stage1's entrypoint paths (inside its rootfs) and the
// interface version it speaks.
type Entrypoints struct {
	Run, Enter, GC, Stop string
	// AppAdd, AppStart, AppStop and AppRm are the app entrypoints of
	// a stage1 that runs mutable pods (see CheckApps).
	AppAdd, AppStart, AppStop, AppRm string
	Version                          int
	// EmptyRootfs is the stage1's stage1abi.AnnotationPodRootfs: each
	// pod's stage1 rootfs is an empty directory, not the image rendered
	// there.
	EmptyRootfs bool
}

// CheckApps refuses, as FailedPrecondition, a stage1 that cannot run
// mutable pods: one that declares an interface version older than
// stage1abi.InterfaceVersionApps, or lacks one of the four app
// entrypoints.
func (e Entrypoints) CheckApps() error {
	if e.Version < stage1abi.InterfaceVersionApps {
		return errdefs.FailedPrecondition("the stage1 speaks interface version %d and cannot change the apps of a running pod (needs %d, with the app entrypoints)", e.Version, stage1abi.InterfaceVersionApps)
	}
	var missing []string
	for _, a := range []struct{ name, value string }{
		{stage1abi.AnnotationAppAdd, e.AppAdd},
		{stage1abi.AnnotationAppStart, e.AppStart},
		{stage1abi.AnnotationAppStop, e.AppStop},
		{stage1abi.AnnotationAppRm, e.AppRm},
	} {
		if a.value == "" {
			missing = append(missing, a.name)
		}
	}
	if len(missing) > 0 {
		return errdefs.FailedPrecondition("the stage1 cannot change the apps of a running pod: its manifest has no %s", strings.Join(missing, ", "))
	}
	return nil
}

// ReadEntrypoints reads the stage1 annotations of an image manifest.
func ReadEntrypoints(m *schema.ImageManifest) (Entrypoints, error) {
	get := func(name string) string {
		v, _ := m.Annotations.Get(name)
		return v
	}
	vs := get(stage1abi.AnnotationInterfaceVersion)
	v, err := stage1abi.CheckInterfaceVersion(vs)
	if err != nil {
		return Entrypoints{}, errdefs.FailedPrecondition("stage1 image %s: %v", m.Name, err)
	}
	e := Entrypoints{
		Run:     get(stage1abi.AnnotationRun),
		Enter:   get(stage1abi.AnnotationEnter),
		GC:      get(stage1abi.AnnotationGC),
		Stop:    get(stage1abi.AnnotationStop),
		Version: v,

		AppAdd:   get(stage1abi.AnnotationAppAdd),
		AppStart: get(stage1abi.AnnotationAppStart),
		AppStop:  get(stage1abi.AnnotationAppStop),
		AppRm:    get(stage1abi.AnnotationAppRm),
	}
	if e.Run == "" {
		return Entrypoints{}, errdefs.FailedPrecondition("stage1 image %s has no %s annotation: it is not a stage1 image", m.Name, stage1abi.AnnotationRun)
	}
	if e.EmptyRootfs, err = stage1abi.ParsePodRootfs(get(stage1abi.AnnotationPodRootfs)); err != nil {
		return Entrypoints{}, errdefs.FailedPrecondition("stage1 image %s: %v", m.Name, err)
	}
	return e, nil
}

// ReadPodEntrypoints reads the entrypoints of the stage1 a pod was prepared
// with, from the copy of its manifest in the pod directory.
func ReadPodEntrypoints(podDir string) (Entrypoints, error) {
	m, err := readPodManifest(podDir)
	if err != nil {
		return Entrypoints{}, err
	}
	return ReadEntrypoints(m)
}

// readPodManifest reads the copy of the stage1's image manifest that
// prepare wrote into the pod directory (stage1abi.Stage1ManifestRel). It
// is outside the stage1 rootfs, out of the pod's reach.
func readPodManifest(podDir string) (*schema.ImageManifest, error) {
	b, err := os.ReadFile(filepath.Join(podDir, stage1abi.Stage1ManifestRel)) //nolint:gosec // G304: a file in the pod directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.FailedPrecondition("pod %s has no stage1 manifest", filepath.Base(podDir))
	}
	if err != nil {
		return nil, fmt.Errorf("read stage1 manifest: %w", err)
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errdefs.FailedPrecondition("stage1 manifest of pod %s: %v", filepath.Base(podDir), err)
	}
	return &m, nil
}

// OpenPod returns the stage1 of the pod at podDir, as stage0 executes it:
// the entrypoints of the pod's copy of the stage1 manifest, and the
// stage1's rendered tree in s (the one stage1abi.Stage1TreeIDFile names,
// which prepare mounted under the pod's stage1 rootfs unless the stage1
// asked for an empty one). A tree that is gone
// from the store (deleted by hand: image rm and image gc leave the trees of
// pods alone) is rendered again from the stored stage1 image when the
// image is still there; when it is not, OpenPod fails with
// FailedPrecondition, saying which image to fetch again.
func OpenPod(ctx context.Context, s *store.Store, podDir string) (*Pod, error) {
	m, err := readPodManifest(podDir)
	if err != nil {
		return nil, err
	}
	eps, err := ReadEntrypoints(m)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(podDir, stage1abi.Stage1TreeIDFile)) //nolint:gosec // G304: a file in the pod directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.FailedPrecondition("pod %s does not record its stage1's tree (%s)", filepath.Base(podDir), stage1abi.Stage1TreeIDFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read the stage1 tree ID: %w", err)
	}
	key := strings.TrimSpace(string(b))
	t, err := s.RestoreTree(ctx, key, m.Name.String())
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.FailedPrecondition("the stage1 tree %s is gone from the store, and no stored image renders it again: fetch the pod's stage1 image %s again (the version it was prepared with)",
			key, stage1Label(m))
	}
	if err != nil {
		return nil, fmt.Errorf("find the stage1's tree %s: %w", key, err)
	}
	return &Pod{Dir: podDir, Tree: t, Entrypoints: eps}, nil
}

// stage1Label names a stage1 image for a message: name:version.
func stage1Label(m *schema.ImageManifest) string {
	if v, ok := m.Labels.Get("version"); ok {
		return m.Name.String() + ":" + v
	}
	return m.Name.String()
}
