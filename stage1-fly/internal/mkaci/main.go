// Command mkaci packs the stage1-fly image: it writes the stage1 image
// manifest into an image directory that holds rootfs/ (the entrypoints,
// built by scripts/build-stage1-fly.sh) and archives manifest and rootfs/
// into a gzipped ACI.
//
//	go run ./stage1-fly/internal/mkaci -version V -arch GOARCH -dir DIR -o OUT.aci
//
// The archive is deterministic: entries in lexical order, owned by 0:0,
// modes normalized to 0755 (directories and executables) or 0644, and
// every timestamp set to SOURCE_DATE_EPOCH (0 when unset). It is a build
// tool: it runs on the build host, never in a pod, and needs no privileges.
package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/fly"
)

// ImageName is the name of the stage1-fly image.
const ImageName = "nosecone.dev/nscn/stage1-fly"

func main() {
	version := flag.String("version", "", "value of the version label")
	arch := flag.String("arch", "amd64", "Go architecture the entrypoints were built for")
	dir := flag.String("dir", "", "image directory holding rootfs/; the manifest is written there")
	out := flag.String("o", "", "path of the ACI to write")
	flag.Parse()
	if *version == "" || *dir == "" || *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: mkaci -version V [-arch GOARCH] -dir DIR -o OUT.aci")
		os.Exit(2) //nolint:forbidigo // main: only main exits
	}
	if err := run(*version, *arch, *dir, *out); err != nil {
		fmt.Fprintf(os.Stderr, "mkaci: %v\n", err)
		os.Exit(1) //nolint:forbidigo // main: only main exits
	}
}

func run(version, arch, dir, out string) error {
	mtime, err := sourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	im, err := Manifest(version, arch)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, "manifest"), func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	}); err != nil {
		return err
	}
	return writeAtomic(out, func(w io.Writer) error { return WriteACI(w, dir, mtime) })
}

// sourceDateEpoch parses SOURCE_DATE_EPOCH (reproducible-builds.org).
func sourceDateEpoch(v string) (time.Time, error) {
	if v == "" {
		return time.Unix(0, 0), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
	}
	return time.Unix(n, 0), nil
}

// Manifest is the stage1-fly image manifest: app-less, labelled with the
// version, os and arch, and annotated with the entrypoints and the stage1
// interface version.
func Manifest(version, goarch string) (*schema.ImageManifest, error) {
	appcOS, appcArch, err := types.ToAppcOSArch("linux", goarch, "")
	if err != nil {
		return nil, fmt.Errorf("map architecture: %w", err)
	}
	im := schema.BlankImageManifest()
	name, err := types.NewACIdentifier(ImageName)
	if err != nil {
		return nil, err
	}
	im.Name = *name
	im.Labels = types.Labels{
		{Name: "version", Value: version},
		{Name: "os", Value: appcOS},
		{Name: "arch", Value: appcArch},
	}
	for _, a := range []struct{ name, value string }{
		{stage1abi.AnnotationRun, fly.EntrypointRun},
		{stage1abi.AnnotationEnter, fly.EntrypointEnter},
		{stage1abi.AnnotationGC, fly.EntrypointGC},
		{stage1abi.AnnotationStop, fly.EntrypointStop},
		{stage1abi.AnnotationInterfaceVersion, strconv.Itoa(fly.InterfaceVersion)},
	} {
		id, err := types.NewACIdentifier(a.name)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", a.name, err)
		}
		im.Annotations.Set(*id, a.value)
	}
	return im, nil
}

// WriteACI writes dir/manifest and the tree dir/rootfs as a gzipped tar.
func WriteACI(w io.Writer, dir string, mtime time.Time) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	if err := addFile(tw, dir, "manifest", mtime); err != nil {
		return err
	}
	err = filepath.WalkDir(filepath.Join(dir, "rootfs"), func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		return addFile(tw, dir, filepath.ToSlash(rel), mtime)
	})
	if err != nil {
		return fmt.Errorf("archive rootfs: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finish tar: %w", err)
	}
	return zw.Close()
}

// addFile appends one directory or regular file, normalized.
func addFile(tw *tar.Writer, dir, rel string, mtime time.Time) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: rel, ModTime: mtime, Format: tar.FormatPAX}
	switch {
	case st.IsDir():
		hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, rel+"/", 0o755
	case st.Mode().IsRegular():
		hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, st.Size(), 0o644
		if st.Mode()&0o111 != 0 {
			hdr.Mode = 0o755
		}
	default:
		return fmt.Errorf("%s: only directories and regular files go into the image", p)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", rel, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p) //nolint:gosec // G304: a file of the tree being archived
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("archive %s: %w", rel, err)
	}
	return nil
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
