//go:build !linux

package seccomp

import "github.com/nosecone/nscn/internal/errdefs"

// errnoValue knows only Linux errno numbers.
func errnoValue(name string) (uint16, error) {
	return 0, errdefs.Newf(errdefs.ErrNotImplemented, "seccomp errno %q: only Linux errno numbers are known", name)
}
