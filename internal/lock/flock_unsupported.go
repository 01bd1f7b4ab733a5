//go:build !linux

package lock

import (
	"os"

	"github.com/nosecone/nscn/internal/errdefs"
)

func notImplemented() error {
	return errdefs.Newf(errdefs.ErrNotImplemented, "flock locks are only supported on linux")
}

func open(string, Kind) (*os.File, error) { return nil, notImplemented() }
func flock(int, mode, bool) error         { return notImplemented() }
func unlock(int) error                    { return notImplemented() }
func checkFd(int) error                   { return notImplemented() }
func setCloseOnExec(int, bool) error      { return notImplemented() }
func dupTo(int, int) error                { return notImplemented() }
func dupCloseOnExec(int) (int, error)     { return -1, notImplemented() }

func probe(string, Kind) (bool, error) { return false, notImplemented() }
