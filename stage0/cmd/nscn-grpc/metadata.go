package main

import (
	"context"

	"github.com/coreos/go-systemd/v22/daemon"
	ucli "github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/mds"
	"github.com/nosecone/nscn/stage0/cli"
)

// metadataServiceCommand is `nscn metadata-service` with its server
// (Documentation/metadata-service.md). It lives here, not in nscn, so that
// nscn does not link net/http for it.
func metadataServiceCommand() *ucli.Command {
	cmd := cli.MetadataServiceCommand()
	cmd.Action = serveMetadata
	return cmd
}

func serveMetadata(c *ucli.Context) error {
	g := cli.ServiceOf(c).Globals()
	if c.NArg() != 0 {
		return cli.UsageErrorf("metadata-service: takes no arguments")
	}
	port := c.Int("listen-port")
	if port < 1 || port > 65535 {
		return cli.UsageErrorf("metadata-service: --listen-port %d is not a TCP port", port)
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
}

// metadataListeners returns the sockets systemd passed, completed with those
// the flags name for what it did not pass.
func metadataListeners(ctx context.Context, g *cli.Globals, socket, address string, port int) (ls mds.Listeners, err error) {
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
