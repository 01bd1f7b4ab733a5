package cli

import "github.com/urfave/cli/v2"

// DefaultCRIListen is where nscn cri listens unless told otherwise.
const DefaultCRIListen = "unix:///run/nscn/cri.sock"

// CRICommand is `nscn cri` as documented, without its action: the stub
// of nscn and the server of nscn-grpc share it.
func CRICommand() *cli.Command {
	return &cli.Command{
		Name:  "cri",
		Usage: "serve the Kubernetes Container Runtime Interface (CRI v1) on a unix socket",
		Description: `Runs a CRI v1 server until SIGINT or SIGTERM, for a kubelet, crictl or critest:
the image service (PullImage, ImageStatus, ListImages, RemoveImage, ImageFsInfo)
on the image store of --dir, and the runtime service's Version and Status.

An image is what the CRI calls one: its ID is "sha256:" and the config digest, and
it carries every tag and digest reference that names it. A pull takes a tag only
when registries.d trusts its repository (Documentation/images.md), since the
kubelet passes no --insecure-options; credentials come from the request, then
auth.d and Docker's config, as for nscn fetch.

The socket (--listen) is created mode 0600 in a directory created 0700: whoever
can talk to it runs anything as root. State is on disk, never only in memory: a
restarted server sees every image and pod. Readiness is reported with sd_notify
when NOTIFY_SOCKET is set. See Documentation/cri.md.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: DefaultCRIListen, Usage: "unix socket to serve on (unix:///PATH or PATH)"},
		},
	}
}
