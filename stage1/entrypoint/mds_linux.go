package entrypoint

import (
	"context"
	"log/slog"

	"github.com/nosecone/nscn/stage1/nspawn"
)

// podMetadataURL is the AC_METADATA_URL run gives the pod's apps: empty
// when stage0 registered no pod with the metadata service (no
// --mds-token), or when the pod has no network to reach it by, which is
// worth a warning.
func podMetadataURL(ctx context.Context, log *slog.Logger, a nspawn.RunArgs) string {
	if a.MDSToken == "" {
		return ""
	}
	host, ok := nspawn.MetadataHost(a.NetMode)
	if !ok {
		log.WarnContext(ctx, "the pod is registered with the metadata service but has no network to reach it: AC_METADATA_URL is not set", "net", a.Net)
		return ""
	}
	return nspawn.MetadataURL(a, host)
}
