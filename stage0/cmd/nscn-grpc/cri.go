package main

import (
	"errors"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	ucli "github.com/urfave/cli/v2"
	"google.golang.org/grpc"

	"github.com/nosecone/nscn/stage0/cli"
	"github.com/nosecone/nscn/stage0/cri"
	"github.com/nosecone/nscn/stage0/fetch"
)

// criStopGrace is how long a stopping server lets calls in progress (a
// pull) finish before it cuts them.
const criStopGrace = 10 * time.Second

// criCommand is `nscn cri` with its server.
func criCommand() *ucli.Command {
	cmd := cli.CRICommand()
	cmd.Action = serveCRI
	return cmd
}

func serveCRI(c *ucli.Context) error {
	svc := cli.ServiceOf(c)
	g := svc.Globals()
	if c.NArg() != 0 {
		return cli.UsageErrorf("cri: takes no arguments")
	}
	s, err := svc.OpenStore(c.Context)
	if err != nil {
		return err
	}
	argv, err := svc.Argv()
	if err != nil {
		return err
	}
	srv, err := cri.New(cri.Options{
		DataDir:    g.Dir,
		Store:      s,
		NewFetcher: func() *fetch.Fetcher { return svc.NewFetcher(s, fetch.PullUpdate) },
		Log:        g.Log,
		NscnArgs:   argv,
		// The entrypoints' output joins the server's log.
		Apps: svc.AppsConfig(s, os.Stderr),
	})
	if err != nil {
		return err
	}
	if err := srv.StartStreaming(c.Context); err != nil {
		return err
	}
	l, path, err := cri.Listen(c.String("listen"))
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(path) }()
	gs := grpc.NewServer()
	srv.Register(gs)
	done := make(chan error, 1)
	go func() { done <- gs.Serve(l) }()
	g.Log.Info("serving the CRI", "socket", path)
	// sd_notify is best effort: without NOTIFY_SOCKET it does nothing.
	if _, nerr := daemon.SdNotify(true, daemon.SdNotifyReady); nerr != nil {
		g.Log.Warn("notify readiness", "err", nerr)
	}
	select {
	case err := <-done:
		return err
	case <-c.Done():
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(criStopGrace):
		gs.Stop()
	}
	if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	g.Log.Info("CRI server stopped")
	return nil
}
