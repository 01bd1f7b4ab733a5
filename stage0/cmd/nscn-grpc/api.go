package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	ucli "github.com/urfave/cli/v2"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/version"
	"github.com/nosecone/nscn/stage0/apiservice"
	"github.com/nosecone/nscn/stage0/cli"
)

// apiServiceCommand is `nscn api-service` with its server
// (Documentation/api-service.md).
func apiServiceCommand() *ucli.Command {
	cmd := cli.APIServiceCommand()
	cmd.Action = serveAPI
	return cmd
}

func serveAPI(c *ucli.Context) error {
	svc := cli.ServiceOf(c)
	g := svc.Globals()
	if c.NArg() != 0 {
		return cli.UsageErrorf("api-service: takes no arguments")
	}
	interval := c.Duration("poll-interval")
	if interval < 10*time.Millisecond {
		return cli.UsageErrorf("api-service: --poll-interval %s is below 10ms", interval)
	}
	ls, err := apiListeners(c.Context, g, c.String("listen"), c.String("socket"))
	if err != nil {
		return err
	}
	srv := apiservice.NewServer(apiservice.Config{
		DataDir: g.Dir,
		Store:   svc.OpenStoreReadOnly(c.Context),
		Info: &v1alpha.Info{
			RktVersion:  version.Version,
			AppcVersion: version.AppcVersion,
			ApiVersion:  apiservice.APIVersion,
			GlobalFlags: &v1alpha.GlobalFlags{
				Dir:                g.Dir,
				SystemConfigDir:    g.SystemConfig,
				LocalConfigDir:     g.LocalConfig,
				UserConfigDir:      g.UserConfig,
				InsecureFlags:      c.String("insecure-options"),
				TrustKeysFromHttps: g.TrustKeysFromHTTPS,
			},
		},
		PollInterval: interval,
		Log:          g.Log,
	})
	return srv.Serve(c.Context, ls, func() {
		// sd_notify is best effort: without NOTIFY_SOCKET it does nothing.
		if _, nerr := daemon.SdNotify(true, daemon.SdNotifyReady); nerr != nil {
			g.Log.Warn("notify readiness", "err", nerr)
		}
	})
}

// apiListeners returns the sockets systemd passed or, without any, those
// the flags name.
func apiListeners(ctx context.Context, g *cli.Globals, address, socket string) (ls []net.Listener, err error) {
	ls, err = activation.Listeners()
	if err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("api-service: socket-activated listeners: %w", err))
	}
	ls = slicesCompact(ls)
	if len(ls) > 0 {
		g.Log.Info("using socket-activated listeners", "count", len(ls))
		return ls, nil
	}
	defer func() {
		if err != nil {
			for _, l := range ls {
				_ = l.Close()
			}
		}
	}()
	var lc net.ListenConfig
	if address != "" {
		l, err := lc.Listen(ctx, "tcp", address)
		if err != nil {
			return ls, fmt.Errorf("api-service: listen on %s: %w", address, err)
		}
		ls = append(ls, l)
	}
	if socket != "" {
		l, err := listenAPISocket(ctx, socket)
		if err != nil {
			return ls, err
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		return nil, cli.UsageErrorf("api-service: --listen and --socket are both empty: nothing to serve on")
	}
	return ls, nil
}

// slicesCompact drops the nil entries activation.Listeners gives for
// passed fds that are not sockets it can use.
func slicesCompact(ls []net.Listener) []net.Listener {
	out := ls[:0]
	for _, l := range ls {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

// listenAPISocket listens on the Unix socket path, mode 0660, replacing
// a stale socket a killed service left; Go removes the file when the
// listener closes.
func listenAPISocket(ctx context.Context, path string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, cli.UsageErrorf("api-service: --socket %q is not an absolute path", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, errdefs.FailedPrecondition("api-service: %s exists and is not a socket", path)
		}
		d := net.Dialer{Timeout: time.Second}
		if conn, err := d.DialContext(ctx, "unix", path); err == nil {
			_ = conn.Close()
			return nil, errdefs.AlreadyExists("api-service: a service already listens on %s", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("api-service: remove stale socket: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("api-service: %w", err)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("api-service: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil { //nolint:gosec // G302: the nscn group's members may connect, as they may read the data directory
		_ = l.Close()
		return nil, fmt.Errorf("api-service: %w", err)
	}
	return l, nil
}
