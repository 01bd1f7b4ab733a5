package entrypoint

import (
	"context"
	"log/slog"
	"net"
	"net/netip"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// podMetadataURL is the AC_METADATA_URL run gives the pod's apps: empty
// when stage0 registered no pod with the metadata service (no
// --mds-token), or when the pod has no network to reach it by, which is
// worth a warning. hostAddr is the host's address on the pod's first CNI
// network (podNet.HostAddr), nil for host and none.
func podMetadataURL(ctx context.Context, log *slog.Logger, a sdpod.RunArgs, hostAddr net.IP) string {
	if a.MDSToken == "" {
		return ""
	}
	if addr, ok := netip.AddrFromSlice(hostAddr); ok && a.NetMode == sdpod.NetCNI {
		return sdpod.MetadataURL(a, addr.Unmap())
	}
	host, ok := sdpod.MetadataHost(a.NetMode)
	if !ok {
		log.WarnContext(ctx, "the pod is registered with the metadata service but has no network to reach it: AC_METADATA_URL is not set", "net", a.Net)
		return ""
	}
	return sdpod.MetadataURL(a, host)
}
