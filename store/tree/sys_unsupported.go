//go:build !linux

package tree

import (
	"context"
	"errors"

	"github.com/nosecone/nscn/internal/errdefs"
)

const oNoFollow = 0

var errLocked = errors.New("tree lock held by another process")

type fileLock struct{}

func (*fileLock) release(bool) {}

var errUnsupported = errdefs.Newf(errdefs.ErrNotImplemented, "rendered trees are only supported on linux")

func (s *Store) lock(context.Context, string, bool) (*fileLock, error) { return nil, errUnsupported }

func syncFS(string) error { return errUnsupported }

func hashRootfs(context.Context, string, string, map[[2]uint64]fileRecord) (string, error) {
	return "", errUnsupported
}

func fdRecord(int) ([2]uint64, fileRecord, error) { return [2]uint64{}, fileRecord{}, errUnsupported }

func closeAddsNoXattrs() bool { return false }

func fdHasNoXattrs(int) bool { return false }
