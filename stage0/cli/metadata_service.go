package cli

import (
	"context"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/mds"
)

func metadataServiceCommand() *cli.Command {
	return &cli.Command{
		Name:  "metadata-service",
		Usage: "run the App Container metadata service for pods",
		Description: `Runs the appc metadata service until SIGINT or SIGTERM: pods reach it over TCP
(--listen-address, --listen-port) through their AC_METADATA_URL, and stage1 registers
each pod with it over the Unix socket --socket (mode 0600; only root, or the user the
service runs as, may register). See Documentation/metadata-service.md.

Socket activation is supported: a Unix stream socket passed by systemd (LISTEN_FDS,
LISTEN_PID) replaces --socket, and TCP sockets passed replace --listen-address and
--listen-port. Readiness is reported with sd_notify when NOTIFY_SOCKET is set.

Registrations are kept in memory: a restarted service knows no pod until each
registers again.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "listen-port", Value: mds.DefaultPort, Usage: "TCP port of the metadata API"},
			&cli.StringFlag{Name: "listen-address", Usage: "address of the metadata API (default: every address of the host)"},
			&cli.StringFlag{Name: "socket", Value: mds.DefaultSocket, Usage: "Unix socket of the registration API"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() != 0 {
				return usageErrorf("metadata-service: takes no arguments")
			}
			port := c.Int("listen-port")
			if port < 1 || port > 65535 {
				return usageErrorf("metadata-service: --listen-port %d is not a TCP port", port)
			}
			ls, err := metadataListeners(c.Context, g, c.String("socket"), c.String("listen-address"), port)
			if err != nil {
				return err
			}
			// sd_notify is best effort: without NOTIFY_SOCKET it does nothing.
			if _, nerr := daemon.SdNotify(true, daemon.SdNotifyReady); nerr != nil {
				g.Log.Warn("notify readiness", "err", nerr)
			}
			return mds.NewServer(g.Log).Serve(c.Context, ls)
		},
	}
}

// metadataListeners returns the sockets systemd passed, completed with those
// the flags name for what it did not pass.
func metadataListeners(ctx context.Context, g *Globals, socket, address string, port int) (ls mds.Listeners, err error) {
	ls, err = mds.Activated()
	if err != nil {
		return ls, err
	}
	if ls.Registration != nil || len(ls.Metadata) > 0 {
		g.Log.Info("using socket-activated listeners", "registration", ls.Registration != nil, "metadata", len(ls.Metadata))
	}
	defer func() {
		if err != nil {
			ls.Close()
		}
	}()
	if ls.Registration == nil {
		if ls.Registration, err = mds.ListenRegistration(ctx, socket); err != nil {
			return ls, err
		}
	}
	if len(ls.Metadata) == 0 {
		l, lerr := mds.ListenMetadata(ctx, address, port)
		if lerr != nil {
			return ls, lerr
		}
		ls.Metadata = append(ls.Metadata, l)
	}
	return ls, nil
}
