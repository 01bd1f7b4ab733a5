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
	dir := filepath.Join(rootfs, sdpod.UnitDir)
	if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // G301: the image's unit directory, world-readable as systemd's
		return err
	}
	for _, f := range units.MountTargets() {
		if err := os.WriteFile(filepath.Join(dir, f.Name), []byte(f.Content), 0o644); err != nil { //nolint:gosec // G306: a unit file, world-readable as systemd's
			return err
		}
	}
	return nil
}
