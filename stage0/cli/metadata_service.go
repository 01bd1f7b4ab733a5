package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/mdsclient"
)

// MetadataServiceCommand is "nscn metadata-service" without its action: its
// name, help and flags. nscn serves it with a stub that hands the command
// line to nscn-grpc, which serves it (stage0/cmd/nscn-grpc): the server
// links net/http, crypto/tls and crypto/x509, whose start-up every nscn run
// would otherwise pay (Documentation/performance.md). The exec keeps the
// process, so systemd's socket activation and readiness work as before.
func MetadataServiceCommand() *cli.Command {
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
			&cli.IntFlag{Name: "listen-port", Value: mdsclient.DefaultPort, Usage: "TCP port of the metadata API"},
			&cli.StringFlag{Name: "listen-address", Usage: "address of the metadata API (default: every address of the host)"},
			&cli.StringFlag{Name: "socket", Value: mdsclient.DefaultSocket, Usage: "Unix socket of the registration API"},
		},
	}
}
