// Command app is the stage1-nspawn app helper (/nscn/app in the image).
// It is not a stage1 entrypoint: the pod's systemd units run it inside the
// pod as "app MODE NAME" (see package units and entrypoint.App). It exits
// 254 with one line on stderr on failure; in the exec, run and handler
// modes it exits as the app (or handler) did, which runs in a PID
// namespace of its own below it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nosecone/nscn/internal/stage1/apphelper"
	"github.com/nosecone/nscn/internal/stage1/entry"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// flavor is entrypoint.Flavor, the name in the helper's log and error
// lines. The helper does not import package entrypoint for it: that
// would link the run entrypoint's networking (libcni, netlink, nftables,
// iptables) into a process every app start waits for, and its package
// initialisation with it (TestHelperLinksNoNetworking).
const flavor entry.Flavor = "nspawn"

func main() {
	if len(os.Args) != 3 || !apphelper.IsAppMode(os.Args[1]) {
		fmt.Fprintln(os.Stderr, "usage: app prepare|pre-start|exec|post-stop|reap NAME")
		os.Exit(2) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	debug := false
	var stderr io.Writer = os.Stderr
	ctx := context.Background()
	// ModeHostExec starts on the host, where no pod config is: it
	// reports on its sync pipe.
	if pod, err := sdpod.LoadPod(sdpod.PodConfigFile); err == nil && os.Args[1] != apphelper.ModeHostExec {
		debug = pod.Debug
		stderr = apphelper.HelperStderr(pod, os.Args[1], os.Args[2])
		// Its lines go where the helper's messages go: nscn run's stderr.
		ctx = timeline.NewContext(ctx, timeline.New("app:"+os.Args[2], time.Duration(pod.TimelineBase), stderr))
	}
	log := flavor.Logger(stderr, debug)
	code, err := apphelper.App(ctx, log, os.Args[1], os.Args[2])
	if err != nil {
		_, _ = fmt.Fprintln(stderr, flavor.ErrorLine(fmt.Errorf("app %s: %s: %w", os.Args[2], os.Args[1], err)))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	os.Exit(code) //nolint:forbidigo // main: the app's status, mirrored
}
