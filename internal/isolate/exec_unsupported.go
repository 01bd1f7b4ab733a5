//go:build !linux

package isolate

import (
	"syscall"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Creds are the user and groups an app process runs as.
type Creds struct {
	UID, GID uint32
	Groups   []uint32
}

// ExecConfig describes the program Exec replaces the process with.
type ExecConfig struct {
	Path              string
	Args              []string
	Env               []string
	Dir               string
	Creds             Creds
	ParentDeathSignal syscall.Signal
}

// Exec is Linux only.
func Exec(p *Policy, cfg ExecConfig) error {
	return errdefs.Newf(errdefs.ErrNotImplemented, "isolate: Exec is only implemented on Linux")
}
