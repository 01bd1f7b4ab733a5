// Command guest is every Go program of the kvm flavor's guest in one
// binary, chosen by the name it is run as (argv[0]'s last element):
//
//	init   /init of the initramfs, the guest kernel's first process
//	app    /nscn/app, the app helper the pod's systemd runs for each app
//	agent  /nscn/agent (a symlink to app in the image), the guest agent
//	       and its enter helper
//
// Why one binary: under TCG most of the guest's CPU goes to translating
// code that runs once, and qemu keeps a translation keyed by the guest
// physical page it came from. /init binds its own file, which stays in
// the initramfs's memory, over /nscn/app of the shared root, so the
// helper and the agent run the very pages /init ran: the Go runtime's
// code and what the three share is translated once per pod, not once per
// process (Documentation/performance.md, figure 9).
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	name := ""
	if len(os.Args) > 0 {
		name = filepath.Base(os.Args[0])
	}
	switch name {
	case "init":
		initMain()
	case "app":
		appMain()
	case "agent":
		agentMain()
	default:
		fmt.Fprintf(os.Stderr, "stage1-kvm guest: run as %q: the name must be init, app or agent\n", name)
		os.Exit(2) //nolint:forbidigo // main
	}
}
