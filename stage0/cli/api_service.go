package cli

import (
	"time"

	"github.com/urfave/cli/v2"
)

// DefaultAPIListen is the API service's default TCP address, rkt's.
const DefaultAPIListen = "localhost:15441"

// DefaultAPIPollInterval is how often the API service looks for events.
const DefaultAPIPollInterval = time.Second

// APIServiceCommand is "nscn api-service" without its action: its name,
// help and flags. nscn serves it with a stub that hands the command line
// to nscn-grpc, which serves it (stage0/cmd/nscn-grpc).
func APIServiceCommand() *cli.Command {
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
			&cli.DurationFlag{Name: "poll-interval", Value: DefaultAPIPollInterval, Usage: "how often to look for events"},
		},
	}
}
