package stub

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Package is the import path of the stub program.
const Package = "github.com/nosecone/nscn/tests/stub-stage1"

// BuildBinary compiles the stub, statically, to out. It runs the go
// command found on PATH, in the working directory, which must be inside
// the nscn module.
func BuildBinary(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, Package) //nolint:gosec // G204: go build of a fixed package
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build stub stage1: %w\n%s", err, b)
	}
	return nil
}

// ACIOptions describe the stub stage1 image.
type ACIOptions struct {
	// Binary is the compiled stub (BuildBinary).
	Binary string
	// Name is the image name; empty means "nosecone.dev/stub-stage1".
	Name string
	// Version is the version label; empty means "0.0.1".
	Version string
	// InterfaceVersion is the value of the interface-version annotation,
	// written as is so that tests can make bad images ("99", "x"); empty
	// leaves the annotation out (which means version 1).
	InterfaceVersion string
	// Entrypoints lists the entrypoints to declare; empty means all.
	Entrypoints []string
}

// fixedTime makes the archive reproducible.
var fixedTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Manifest returns the image manifest of the stub stage1.
func Manifest(opts ACIOptions) (*schema.ImageManifest, error) {
	name := opts.Name
	if name == "" {
		name = "nosecone.dev/stub-stage1"
	}
	version := opts.Version
	if version == "" {
		version = "0.0.1"
	}
	id, err := types.NewACIdentifier(name)
	if err != nil {
		return nil, fmt.Errorf("stub image name: %w", err)
	}
	appcOS, appcArch, err := types.ToAppcOSArch(runtime.GOOS, runtime.GOARCH, "")
	if err != nil {
		return nil, fmt.Errorf("stub image labels: %w", err)
	}
	im := schema.BlankImageManifest()
	im.Name = *id
	im.Labels = types.Labels{
		{Name: "version", Value: version},
		{Name: "os", Value: appcOS},
		{Name: "arch", Value: appcArch},
	}
	eps := opts.Entrypoints
	if len(eps) == 0 {
		eps = []string{Run, Enter, GC, Stop, AppAdd, AppRm, AppStart, AppStop}
	}
	for _, ep := range eps {
		ann, ok := Annotations[ep]
		if !ok {
			return nil, fmt.Errorf("unknown stub entrypoint %q", ep)
		}
		im.Annotations.Set(types.ACIdentifier(ann), path.Join(BinDir, ep))
	}
	if opts.InterfaceVersion != "" {
		im.Annotations.Set(types.ACIdentifier(stage1abi.AnnotationInterfaceVersion), opts.InterfaceVersion)
	}
	return im, nil
}

// WriteACI writes the stub stage1 image, a gzipped tar, to w: the
// manifest, and in the rootfs the binary at BinDir/Binary with one hard
// link per entrypoint.
func WriteACI(ctx context.Context, w io.Writer, opts ACIOptions) error {
	im, err := Manifest(opts)
	if err != nil {
		return err
	}
	mb, err := im.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode stub image manifest: %w", err)
	}
	bin, err := os.Open(opts.Binary)
	if err != nil {
		return fmt.Errorf("open stub binary: %w", err)
	}
	defer func() { _ = bin.Close() }()
	fi, err := bin.Stat()
	if err != nil {
		return fmt.Errorf("open stub binary: %w", err)
	}

	aw, err := aci.NewWriter(w, mb, aci.WriteOptions{Gzip: true, ModTime: fixedTime})
	if err != nil {
		return fmt.Errorf("write stub image: %w", err)
	}
	hdr := func(name string, typ byte, mode int64, size int64, link string, r io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return aw.Add(&tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: size, Linkname: link, Format: tar.FormatPAX}, r)
	}
	dir := "rootfs"
	for _, d := range append([]string{""}, strings.Split(strings.Trim(BinDir, "/"), "/")...) {
		dir = path.Join(dir, d)
		if err := hdr(dir+"/", tar.TypeDir, 0o755, 0, "", nil); err != nil {
			return fmt.Errorf("write stub image: %w", err)
		}
	}
	binPath := path.Join("rootfs", BinDir, Binary)
	if err := hdr(binPath, tar.TypeReg, 0o755, fi.Size(), "", bin); err != nil {
		return fmt.Errorf("write stub image: %w", err)
	}
	for _, ep := range slices.Sorted(maps.Keys(Annotations)) {
		if err := hdr(path.Join("rootfs", BinDir, ep), tar.TypeLink, 0o755, 0, binPath, nil); err != nil {
			return fmt.Errorf("write stub image: %w", err)
		}
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("write stub image: %w", err)
	}
	return nil
}
