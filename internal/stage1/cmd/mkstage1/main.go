// Command mkstage1 builds a stage1 image, for every flavor's build script
// (scripts/build-stage1-*.sh): it writes the image manifest into an image
// directory that holds rootfs/ and packs both into a gzipped ACI
// (package internal/stage1/mkimage).
//
//	mkstage1 -name NAME -version V [-arch GOARCH] -interface-version NAME \
//	         -run PATH -enter PATH -gc PATH -stop PATH [-pod-rootfs empty] \
//	         [-normalize-modes] -dir DIR -o OUT.aci
//
// The interface version is named (e.g. mds-token-file), not numbered:
// the number is pkg/stage1abi's. Timestamps come from SOURCE_DATE_EPOCH
// (0 when unset).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/nosecone/nscn/internal/stage1/mkimage"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func main() {
	var s mkimage.Spec
	flag.StringVar(&s.Name, "name", "", "image name")
	flag.StringVar(&s.Version, "version", "", "value of the version label")
	flag.StringVar(&s.GOARCH, "arch", "amd64", "Go architecture the entrypoints were built for")
	iv := flag.String("interface-version", "", "the stage1 interface version the flavor implements, by name (mds-token-file, ipc, …)")
	flag.StringVar(&s.Entrypoints.Run, "run", "", "path of the run entrypoint in the rootfs")
	flag.StringVar(&s.Entrypoints.Enter, "enter", "", "path of the enter entrypoint in the rootfs")
	flag.StringVar(&s.Entrypoints.GC, "gc", "", "path of the gc entrypoint in the rootfs")
	flag.StringVar(&s.Entrypoints.Stop, "stop", "", "path of the stop entrypoint in the rootfs")
	flag.StringVar(&s.Entrypoints.AppAdd, "app-add", "", "path of the app/add entrypoint in the rootfs")
	flag.StringVar(&s.Entrypoints.AppStart, "app-start", "", "path of the app/start entrypoint in the rootfs")
	flag.StringVar(&s.Entrypoints.AppStop, "app-stop", "", "path of the app/stop entrypoint in the rootfs")
	flag.StringVar(&s.Entrypoints.AppRm, "app-rm", "", "path of the app/rm entrypoint in the rootfs")
	podRootfs := flag.String("pod-rootfs", "", "what stage0 makes of each pod's stage1 rootfs: image (the default) or empty (stage1abi.AnnotationPodRootfs)")
	normalize := flag.Bool("normalize-modes", false, "write modes 0755 (directories, executables) or 0644")
	dir := flag.String("dir", "", "image directory holding rootfs/; the manifest is written there")
	out := flag.String("o", "", "path of the ACI to write")
	flag.Parse()
	if s.Name == "" || *iv == "" || *dir == "" || *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: mkstage1 -name NAME -version V [-arch GOARCH] -interface-version NAME -run P -enter P -gc P -stop P [-pod-rootfs image|empty] [-normalize-modes] -dir DIR -o OUT.aci")
		os.Exit(2) //nolint:forbidigo // main: only main exits
	}
	empty, err := stage1abi.ParsePodRootfs(*podRootfs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkstage1: -pod-rootfs: %v\n", err)
		os.Exit(2) //nolint:forbidigo // main: only main exits
	}
	s.EmptyPodRootfs = empty
	if err := run(s, *iv, *dir, *out, *normalize); err != nil {
		fmt.Fprintf(os.Stderr, "mkstage1: %v\n", err)
		os.Exit(1) //nolint:forbidigo // main: only main exits
	}
}

func run(s mkimage.Spec, iv, dir, out string, normalize bool) error {
	var err error
	if s.InterfaceVersion, err = mkimage.InterfaceVersionByName(iv); err != nil {
		return err
	}
	mtime, err := mkimage.SourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	return mkimage.Build(context.Background(), s, dir, out, mkimage.Options{ModTime: mtime, NormalizeModes: normalize})
}
