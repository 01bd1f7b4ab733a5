// Command app-add is the stage1-kvm app/add entrypoint
// (coreos.com/rkt/stage1/app/add, /nscn/app-add in the image):
// [--debug] [--disable-…] --uuid=UUID --app=NAME, run from the pod directory
// of a running mutable pod, with RKT_STAGE1_ENTERPID naming the pod's qemu.
// It exits 0, or 254 with one line on stderr. See package entrypoint
// (apps_linux.go).
package main

import (
	"os"

	"github.com/nosecone/nscn/stage1-kvm/entrypoint"
)

func main() {
	os.Exit(entrypoint.AppMain(entrypoint.AppAdd)) //nolint:forbidigo // main: the exit status is the stage1 ABI's
}
