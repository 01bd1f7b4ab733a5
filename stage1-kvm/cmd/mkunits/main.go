// Command mkunits writes the units every stage1-kvm pod shares, the
// targets the app helper's mount units name (units.MountTargets), into
// the image's /etc/systemd/system, the one directory the guest's systemd
// searches (a build tool of scripts/build-stage1-kvm.sh, not part of the
// image). Run then writes only the pod's own units there, four files
// fewer per pod.
//
// Usage: mkunits ROOTFS
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nosecone/nscn/internal/stage1/mkimage"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkunits ROOTFS")
		os.Exit(2) //nolint:forbidigo // main
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mkunits:", err)
		os.Exit(1) //nolint:forbidigo // main
	}
}

func run(rootfs string) error {
	return mkimage.WriteUnits(filepath.Join(rootfs, sdpod.UnitDir), units.MountTargets())
}
