//go:build !linux

package entrypoint

import (
	"context"
	"log/slog"
	"os"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
)

var errUnsupported = errdefs.Newf(errdefs.ErrNotImplemented, "stage1-fly runs on Linux only")

// RunConfig is the input of Run.
type RunConfig struct {
	Args                  abiargs.RunArgs
	Log                   *slog.Logger
	LockFD, Term          string
	Stdin, Stdout, Stderr *os.File
}

// EnterConfig is the input of Enter.
type EnterConfig struct {
	Args abiargs.EnterArgs
	Log  *slog.Logger
	Term string
}

// StopConfig is the input of Stop.
type StopConfig struct {
	Args abiargs.StopArgs
	Log  *slog.Logger
}

// GCConfig is the input of GC.
type GCConfig struct {
	Args abiargs.GCArgs
	Log  *slog.Logger
}

// Run is not implemented outside Linux.
func Run(context.Context, RunConfig) (int, error) { return 0, errUnsupported }

// Enter is not implemented outside Linux.
func Enter(context.Context, EnterConfig) error { return errUnsupported }

// Stop is not implemented outside Linux.
func Stop(context.Context, StopConfig) error { return errUnsupported }

// GC is not implemented outside Linux.
func GC(context.Context, GCConfig) error { return errUnsupported }
