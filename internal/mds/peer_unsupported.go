//go:build !linux

package mds

import (
	"net"

	"github.com/nosecone/nscn/internal/errdefs"
)

// peerUID is Linux-only: elsewhere no peer is trusted, so the registration
// API refuses every request.
func peerUID(net.Conn) (uint32, error) {
	return 0, errdefs.Newf(errdefs.ErrNotImplemented, "peer credentials are only read on linux")
}
