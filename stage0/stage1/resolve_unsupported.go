//go:build !linux

package stage1

import "github.com/nosecone/nscn/internal/errdefs"

func resolveEntrypoint(_, _, _ string) (string, error) {
	return "", errdefs.Newf(errdefs.ErrNotImplemented, "executing a stage1 entrypoint is only implemented on Linux")
}
