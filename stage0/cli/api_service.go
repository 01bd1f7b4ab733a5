package cli

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
	"github.com/urfave/cli/v2"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/version"
	"github.com/nosecone/nscn/stage0/apiservice"
)

// DefaultAPIListen is the API service's default TCP address, rkt's.
const DefaultAPIListen = "localhost:15441"

func apiServiceCommand() *cli.Command {
	return &cli.Command{
		Name:  "api-service",
		Usage: "serve the read-only gRPC API (rkt's v1alpha) on pods, images, events and logs",
		Description: `Serves nscn's public API until SIGINT or SIGTERM: rkt's v1alpha gRPC interface
(package v1alpha, service PublicAPI; api/v1alpha/api.proto), wire-compatible with
rkt's, so that clients written for "rkt api-service" work unchanged. It answers
GetInfo, ListPods, InspectPod, ListImages, InspectImage, ListenEvents and GetLogs,
and changes nothing: no call takes a pod's lock or writes to the data directory.
See Documentation/api-service.md.

It listens on TCP at --listen (default localhost:15441, as rkt; "" for none) and,
with --socket=PATH, on a Unix socket too (mode 0660; its directory must exist).
Neither has authentication: every local user can connect to the TCP listener,
while the socket's mode keeps it to its group. --listen= with --socket serves the
nscn group alone, as nscn-api.socket does. Socket activation is supported: the
sockets systemd passes (LISTEN_FDS) replace both flags.
Readiness is reported with sd_notify when NOTIFY_SOCKET is set.

The service needs no root: a member of the nscn group, which may read the data
directory, may run it (Documentation/security.md). Events (ListenEvents) are found
by looking at the data directory every --poll-interval (default 1s): one directory
read per pod state, a lock probe per pod, and a stat of the image index.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: DefaultAPIListen, Usage: "TCP address to serve on (\"\" for none)"},
			&cli.StringFlag{Name: "socket", Usage: "Unix socket to serve on too (e.g. /run/nscn/api.sock)"},
			&cli.DurationFlag{Name: "poll-interval", Value: apiservice.DefaultPollInterval, Usage: "how often to look for events"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() != 0 {
				return usageErrorf("api-service: takes no arguments")
			}
			interval := c.Duration("poll-interval")
			if interval < 10*time.Millisecond {
				return usageErrorf("api-service: --poll-interval %s is below 10ms", interval)
			}
			s := openStoreReadOnly(c.Context, g)
			ls, err := apiListeners(c.Context, g, c.String("listen"), c.String("socket"))
			if err != nil {
				return err
			}
			srv := apiservice.NewServer(apiservice.Config{
				DataDir: g.Dir,
				Store:   s,
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
		},
	}
}

// apiListeners returns the sockets systemd passed or, without any, those
// the flags name.
func apiListeners(ctx context.Context, g *Globals, address, socket string) (ls []net.Listener, err error) {
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
		return nil, usageErrorf("api-service: --listen and --socket are both empty: nothing to serve on")
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
		return nil, usageErrorf("api-service: --socket %q is not an absolute path", path)
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
