package entrypoint

import (
	"context"
	"log/slog"
	"os"

	"github.com/nosecone/nscn/stage1/nspawn"
)

func joinAppCgroup(app *nspawn.App) error { return nil }

func mountAppCgroup(ctx context.Context, log *slog.Logger, root *os.File, app *nspawn.App) error {
	return nil
}
