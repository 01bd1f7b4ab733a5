// Command app is the stage1-kvm app helper (/nscn/app in the image), the
// shared one (internal/stage1/apphelper) that the nspawn flavor runs too:
// the pod's systemd, in the guest, runs it as "app MODE NAME" from the
// units of internal/stage1/units. It exits 254 with one line on stderr on
// failure; in the exec, run and handler modes it exits as the app (or
// handler) did.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nosecone/nscn/internal/stage1/apphelper"
	"github.com/nosecone/nscn/internal/stage1/entry"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// flavor is entrypoint.Flavor (main_test.go checks), named here so that
// the helper does not link the host side's packages (qemu, virtiofsd, CNI):
// the guest starts it from virtio-fs for every app, and under TCG each
// megabyte and each package initialiser costs.
const flavor entry.Flavor = "kvm"

func main() {
	if len(os.Args) != 3 || !apphelper.IsAppMode(os.Args[1]) {
		fmt.Fprintln(os.Stderr, "usage: app prepare|pre-start|exec|post-stop|reap NAME")
		os.Exit(2) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	debug := false
	if pod, err := sdpod.LoadPod(sdpod.PodConfigFile); err == nil {
		debug = pod.Debug
	}
	code, err := apphelper.App(context.Background(), flavor.Logger(os.Stderr, debug), os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, flavor.ErrorLine(fmt.Errorf("app %s: %s: %w", os.Args[2], os.Args[1], err)))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	os.Exit(code) //nolint:forbidigo // main: the app's status, mirrored
}
