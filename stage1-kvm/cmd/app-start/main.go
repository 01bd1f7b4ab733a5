// Command app-start is the stage1-kvm app/start entrypoint
// (coreos.com/rkt/stage1/app/start, /nscn/app-start in the image):
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
	os.Exit(entrypoint.AppMain(entrypoint.AppStart)) //nolint:forbidigo // main: the exit status is the stage1 ABI's
}
