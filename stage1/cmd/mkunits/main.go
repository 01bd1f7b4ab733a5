// Command mkunits writes the units every stage1-nspawn pod shares
// (units.Shared of nspawn.UnitConfig, and units.MountTargets) into a
// directory of the image's rootfs, nspawn.ImageUnitDir (a build tool of
// scripts/build-stage1-nspawn.sh, not part of the image). Run then
// writes only the pod's own units.
//
// Usage: mkunits ROOTFS
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nosecone/nscn/internal/stage1/mkimage"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/stage1/nspawn"
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
	files, err := imageUnits()
	if err != nil {
		return err
	}
	return mkimage.WriteUnits(filepath.Join(rootfs, nspawn.ImageUnitDir), files)
}

// imageUnits are the units the image ships: the pods' shared units and
// the targets their mount units name.
func imageUnits() ([]units.File, error) {
	files, err := units.Shared(nspawn.UnitConfig().Journal)
	if err != nil {
		return nil, err
	}
	return append(files, units.MountTargets()...), nil
}
