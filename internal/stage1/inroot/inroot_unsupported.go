//go:build !linux

package inroot

import (
	"fmt"
	"os"

	"github.com/nosecone/nscn/internal/errdefs"
)

var errUnsupported = errdefs.Newf(errdefs.ErrNotImplemented, "in-root path resolution needs Linux openat2")

// OpenRoot is not implemented outside Linux.
func OpenRoot(string) (*os.File, error) { return nil, errUnsupported }

// Open is not implemented outside Linux.
func Open(*os.File, string, int) (*os.File, error) { return nil, errUnsupported }

// Exists is not implemented outside Linux.
func Exists(*os.File, string) (bool, error) { return false, errUnsupported }

// MkdirAll is not implemented outside Linux.
func MkdirAll(*os.File, string, uint32) (*os.File, error) { return nil, errUnsupported }

// CreateFile is not implemented outside Linux.
func CreateFile(*os.File, string, uint32) (*os.File, error) { return nil, errUnsupported }

// OpenNoSymlinks is not implemented outside Linux.
func OpenNoSymlinks(string, int) (*os.File, error) { return nil, errUnsupported }

// FDPath is the /proc/self/fd path of f.
func FDPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }
