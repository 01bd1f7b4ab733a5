//go:build !linux

package aci

import (
	"context"
	"io"

	"github.com/nosecone/nscn/internal/errdefs"
)

func extract(context.Context, io.Reader, string, ExtractOptions, bool) error {
	return errdefs.Newf(errdefs.ErrNotImplemented, "extract rootfs: only supported on linux")
}
