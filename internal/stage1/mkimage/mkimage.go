// Package mkimage builds a stage1 image, the same way for every flavor:
// it writes the image manifest from the flavor's facts (Spec: name,
// entrypoints, the pkg/stage1abi interface version it implements) into an
// image directory that holds rootfs/, and packs manifest and rootfs/
// into a gzipped ACI with the one ACI writer (internal/aci).
//
// The archive is reproducible: every entry owned by 0:0 and dated
// SOURCE_DATE_EPOCH (0 when unset), entries in lexical order; with
// NormalizeModes, modes are 0755 (directories and executables) or 0644.
// It is a build tool (internal/stage1/cmd/mkstage1): it runs on the build
// host, never in a pod, and needs no privileges.
package mkimage

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Entrypoints are the paths, inside the stage1 rootfs, of the four
// entrypoints the stage1 ABI names.
type Entrypoints struct {
	// Run is required; an empty Enter, GC or Stop leaves its annotation
	// out (the stage1 does not implement that operation).
	Run, Enter, GC, Stop string
	// AppAdd, AppStart, AppStop and AppRm are the app entrypoints of a
	// flavor that runs mutable pods (stage1abi.InterfaceVersionApps);
	// empty ones are left out.
	AppAdd, AppStart, AppStop, AppRm string
}

// Spec is what a flavor says of its image.
type Spec struct {
	Name        string // the image name, e.g. nosecone.dev/nscn/stage1-fly
	Version     string // the version label
	GOARCH      string // the architecture the entrypoints were built for
	Entrypoints Entrypoints
	// InterfaceVersion is the stage1 interface version the flavor
	// implements, a pkg/stage1abi InterfaceVersion* constant
	// (InterfaceVersionByName).
	InterfaceVersion int
	// EmptyPodRootfs declares stage1abi.AnnotationPodRootfs as
	// stage1abi.PodRootfsEmpty: stage0 gives each pod an empty stage1
	// rootfs instead of the image rendered there.
	EmptyPodRootfs bool
}

// interfaceVersions names the pkg/stage1abi interface versions, so that
// a build script names what its flavor implements instead of repeating a
// number: the name of the constant without "InterfaceVersion", in
// kebab case.
var interfaceVersions = map[string]int{
	"hostname":       stage1abi.InterfaceVersionHostname,
	"disable":        stage1abi.InterfaceVersionDisable,
	"dns-conf":       stage1abi.InterfaceVersionDNSConf,
	"local-config":   stage1abi.InterfaceVersionLocalConfig,
	"ipc":            stage1abi.InterfaceVersionIPC,
	"mds-port":       stage1abi.InterfaceVersionMDSPort,
	"ready":          stage1abi.InterfaceVersionReady,
	"mds-token-file": stage1abi.InterfaceVersionMDSTokenFile,
	"apps":           stage1abi.InterfaceVersionApps,
	"private-users":  stage1abi.InterfaceVersionPrivateUsers,
	"app-paths":      stage1abi.InterfaceVersionAppPaths,
	"mount-options":  stage1abi.InterfaceVersionMountOptions,
	"app-pid1":       stage1abi.InterfaceVersionAppPID1,
	"pid":            stage1abi.InterfaceVersionPID,
	"app-tty":        stage1abi.InterfaceVersionAppTTY,
}

// InterfaceVersionByName returns the interface version called name (see
// interfaceVersions).
func InterfaceVersionByName(name string) (int, error) {
	v, ok := interfaceVersions[name]
	if !ok {
		names := make([]string, 0, len(interfaceVersions))
		for n := range interfaceVersions {
			names = append(names, n)
		}
		sort.Strings(names)
		return 0, errdefs.InvalidArgument("unknown stage1 interface version %q (known: %s)", name, strings.Join(names, ", "))
	}
	return v, nil
}

// Manifest is the stage1 image manifest of s: app-less, labelled with the
// version, os and arch, and annotated with the entrypoints and the stage1
// interface version.
func (s Spec) Manifest() (*schema.ImageManifest, error) {
	if _, err := stage1abi.CheckInterfaceVersion(strconv.Itoa(s.InterfaceVersion)); err != nil {
		return nil, errdefs.InvalidArgument("image %s: %w", s.Name, err)
	}
	if s.Version == "" {
		return nil, errdefs.InvalidArgument("image %s: no version", s.Name)
	}
	appcOS, appcArch, err := types.ToAppcOSArch("linux", s.GOARCH, "")
	if err != nil {
		return nil, fmt.Errorf("map architecture: %w", err)
	}
	im := schema.BlankImageManifest()
	name, err := types.NewACIdentifier(s.Name)
	if err != nil {
		return nil, errdefs.InvalidArgument("image name %q: %w", s.Name, err)
	}
	im.Name = *name
	im.Labels = types.Labels{
		{Name: "version", Value: s.Version},
		{Name: "os", Value: appcOS},
		{Name: "arch", Value: appcArch},
	}
	for _, a := range []struct{ name, value string }{
		{stage1abi.AnnotationRun, s.Entrypoints.Run},
		{stage1abi.AnnotationEnter, s.Entrypoints.Enter},
		{stage1abi.AnnotationGC, s.Entrypoints.GC},
		{stage1abi.AnnotationStop, s.Entrypoints.Stop},
		{stage1abi.AnnotationAppAdd, s.Entrypoints.AppAdd},
		{stage1abi.AnnotationAppStart, s.Entrypoints.AppStart},
		{stage1abi.AnnotationAppStop, s.Entrypoints.AppStop},
		{stage1abi.AnnotationAppRm, s.Entrypoints.AppRm},
		{stage1abi.AnnotationInterfaceVersion, strconv.Itoa(s.InterfaceVersion)},
	} {
		if a.value == "" && a.name != stage1abi.AnnotationRun && a.name != stage1abi.AnnotationInterfaceVersion {
			// enter, gc, stop and the app entrypoints are optional
			// (stage1-abi.md): stage0
			// says the stage1 does not implement the operation.
			continue
		}
		if a.name != stage1abi.AnnotationInterfaceVersion && !strings.HasPrefix(a.value, "/") {
			return nil, errdefs.InvalidArgument("annotation %s: %q is not an absolute path in the image", a.name, a.value)
		}
		id, err := types.NewACIdentifier(a.name)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", a.name, err)
		}
		im.Annotations.Set(*id, a.value)
	}
	if s.EmptyPodRootfs {
		im.Annotations.Set(*types.MustACIdentifier(stage1abi.AnnotationPodRootfs), stage1abi.PodRootfsEmpty)
	}
	return im, nil
}

// Options say how Build packs the image.
type Options struct {
	// ModTime dates every entry (SourceDateEpoch).
	ModTime time.Time
	// NormalizeModes: see aci.WriteOptions.
	NormalizeModes bool
}

// Build writes the manifest of s to dir/manifest and packs it with the
// tree dir/rootfs into the ACI out, each written atomically.
func Build(ctx context.Context, s Spec, dir, out string, o Options) error {
	im, err := s.Manifest()
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	data = append(data, '\n')
	if err := writeAtomic(filepath.Join(dir, "manifest"), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		return err
	}
	wo := aci.WriteOptions{
		Gzip: true, GzipLevel: gzip.BestCompression,
		OwnerRoot: true, ModTime: o.ModTime, NormalizeModes: o.NormalizeModes,
	}
	return writeAtomic(out, func(w io.Writer) error {
		return aci.Write(ctx, w, data, filepath.Join(dir, "rootfs"), wo)
	})
}

// SourceDateEpoch parses SOURCE_DATE_EPOCH (reproducible-builds.org):
// the epoch when unset.
func SourceDateEpoch(v string) (time.Time, error) {
	if v == "" {
		return time.Unix(0, 0), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, errdefs.InvalidArgument("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
	}
	return time.Unix(n, 0), nil
}

// writeAtomic writes path through a temporary file in its directory.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// scriptFlag matches a mkstage1 flag with its value in a build script.
var scriptFlag = regexp.MustCompile(`(?m)(?:^|\s)-(name|interface-version|run|enter|gc|stop|pod-rootfs)[ =]"?([^\s"\\]+)"?`)

// CheckBuildScript reports whether the build script (its text) calls
// mkstage1 with the facts of want (name, interface version, entrypoints):
// each flavor's tests hold its Go constants and its script together.
func CheckBuildScript(script []byte, want Spec) error {
	got := map[string]string{}
	for _, m := range scriptFlag.FindAllSubmatch(script, -1) {
		got[string(m[1])] = string(m[2])
	}
	var errs []error
	check := func(flag, wantV string) {
		if got[flag] != wantV {
			errs = append(errs, fmt.Errorf("-%s is %q, want %q", flag, got[flag], wantV))
		}
	}
	check("name", want.Name)
	check("run", want.Entrypoints.Run)
	check("enter", want.Entrypoints.Enter)
	check("gc", want.Entrypoints.GC)
	check("stop", want.Entrypoints.Stop)
	podRootfs := ""
	if want.EmptyPodRootfs {
		podRootfs = stage1abi.PodRootfsEmpty
	}
	check("pod-rootfs", podRootfs)
	if v, err := InterfaceVersionByName(got["interface-version"]); err != nil || v != want.InterfaceVersion {
		errs = append(errs, fmt.Errorf("-interface-version %q is not version %d", got["interface-version"], want.InterfaceVersion))
	}
	return errors.Join(errs...)
}

// WriteUnits writes files into dir of a stage1 image's rootfs at
// build time (the stage1 image builders' mkunits tools), creating dir:
// world-readable, as systemd's own unit directories are.
func WriteUnits(dir string, files []units.File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), []byte(f.Content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
