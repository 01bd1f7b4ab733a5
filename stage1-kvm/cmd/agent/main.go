// Command agent is the kvm flavor's guest agent (/nscn/agent in the
// image), started by the guest's /init beside the pod's systemd. It
// serves the host's requests on the control port and the enter port, and
// the metadata API to the pod's apps (see package guest).
// "agent __nscn-enter-helper" is the agent's own enter helper
// (guest.EnterHelper), which becomes the entered command.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-kvm/guest"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == guest.EnterHelperArg {
		err := guest.EnterHelper()
		fmt.Fprintln(os.Stderr, "nscn-agent: enter:", err)
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	go func() {
		if err := guest.ServeMetadata(context.Background(), os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "nscn-agent: metadata:", err)
		}
	}()
	go func() {
		if err := guest.EnterServer(os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "nscn-agent: enter port:", err)
		}
	}()
	if err := guest.Agent(os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "nscn-agent:", err)
		os.Exit(1) //nolint:forbidigo // main
	}
}
