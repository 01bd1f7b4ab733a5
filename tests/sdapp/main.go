// Command sdapp is the app of the sdapp test image (scripts/build-images.sh):
// an app that speaks systemd's protocols as a packaged daemon would, with
// the go-systemd library such daemons use, for the journal, notify and
// socket-activation tests (tests/journal_test.go).
//
//	sdapp notify DELAY   print "starting", wait DELAY, say READY=1 on
//	                     NOTIFY_SOCKET, print "ready", then wait DELAY again
//	sdapp listen         take the sockets systemd passed (LISTEN_FDS, for
//	                     this very process: LISTEN_PID), answer one
//	                     connection on the first with what it received, exit
//	                     (READY=1 once it has the sockets)
package main

import (
	"bufio"
	"fmt"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sdapp:", err)
		os.Exit(1) //nolint:forbidigo // a main says how it ended
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: sdapp notify DELAY | sdapp listen")
	}
	switch args[0] {
	case "notify":
		if len(args) != 2 {
			return fmt.Errorf("usage: sdapp notify DELAY")
		}
		d, err := time.ParseDuration(args[1])
		if err != nil {
			return err
		}
		fmt.Println("starting")
		time.Sleep(d)
		sent, err := daemon.SdNotify(false, daemon.SdNotifyReady)
		if err != nil {
			return fmt.Errorf("notify: %w", err)
		}
		if !sent {
			return fmt.Errorf("notify: no NOTIFY_SOCKET")
		}
		fmt.Println("ready")
		time.Sleep(d)
		return nil
	case "listen":
		names := os.Getenv("LISTEN_FDNAMES") // Listeners unsets it
		ls, err := activation.Listeners()
		if err != nil {
			return fmt.Errorf("listeners: %w", err)
		}
		if len(ls) == 0 || ls[0] == nil {
			return fmt.Errorf("no socket passed (pid %d, parent %d, environment %q)", os.Getpid(), os.Getppid(), os.Environ())
		}
		fmt.Printf("listening on %s, %d socket(s) named %s\n", ls[0].Addr(), len(ls), names)
		// The image supports sd_notify: its unit waits for this.
		if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
		c, err := ls[0].Accept()
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		defer func() { _ = c.Close() }()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		_, err = fmt.Fprintf(c, "socket-activated sdapp got %s", line)
		return err
	default:
		return fmt.Errorf("unknown mode %q", args[0])
	}
}
