// Command agent is the kvm flavor's guest agent (/nscn/agent in the
// image), which the pod's systemd starts (nscn-agent.service, once the
// apps' units have started, or before them in a pod registered with the
// metadata service). It serves the host's requests on the control and
// enter ports and the metadata API to the pod's apps (see package guest),
// and says READY=1 to systemd once it has all open (and the pod's
// metadata in memory): the pod's readiness waits for it, so that a halt
// sent after it is never lost, and so do the apps of a registered pod. "agent __nscn-enter-helper" is the agent's own
// enter helper (guest.EnterHelper), which becomes the entered command.
package main

import (
	"context"
	"fmt"
	"net"
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
	if done, err := guest.StartMetadata(context.Background(), os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "nscn-agent: metadata:", err)
	} else if done != nil {
		go func() {
			if err := <-done; err != nil {
				fmt.Fprintln(os.Stderr, "nscn-agent: metadata:", err)
			}
		}()
	}
	control, err := guest.OpenPort(guest.ControlPort)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nscn-agent:", err)
		os.Exit(1) //nolint:forbidigo // main
	}
	enter, err := guest.OpenPort(guest.EnterPort)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nscn-agent:", err)
		os.Exit(1) //nolint:forbidigo // main
	}
	if err := notifyReady(); err != nil {
		fmt.Fprintln(os.Stderr, "nscn-agent:", err)
	}
	go func() {
		if err := guest.EnterServer(os.Stderr, enter); err != nil {
			fmt.Fprintln(os.Stderr, "nscn-agent: enter port:", err)
		}
	}()
	if err := guest.Agent(os.Stderr, control); err != nil {
		fmt.Fprintln(os.Stderr, "nscn-agent:", err)
		os.Exit(1) //nolint:forbidigo // main
	}
}

// notifyReady sends READY=1 to systemd's notification socket
// (NOTIFY_SOCKET, set for a Type=notify unit), if there is one.
func notifyReady() error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Write([]byte("READY=1")); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}
