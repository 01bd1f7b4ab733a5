package entrypoint

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nosecone/nscn/stage1/nspawn"
)

// reportIsolators tells the user which isolators each app gets: one line
// per app on stderr for what the image or the flags asked for, and every
// entry, nscn's defaults included, in the debug log.
func reportIsolators(ctx context.Context, log *slog.Logger, cfg RunConfig, reports []nspawn.AppReport) {
	for _, r := range reports {
		if cfg.Args.Debug {
			r.Report.Log(ctx, log.With("app", r.App))
		}
		if s := r.Summary(); s != "" {
			fmt.Fprintln(cfg.Stderr, "stage1-nspawn: "+s)
		}
	}
}
