package appspec

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
)

// LookPath finds the executable for file the way execvp(3) does, inside the
// app's rootfs root, and returns its absolute in-root path:
//
//   - a file containing "/" is used as is, relative to dir (the working
//     directory) when not absolute;
//   - otherwise each entry of pathEnv is tried in order, an empty entry
//     meaning dir.
//
// The result must be a regular file with an execute bit set.
func LookPath(root fs.FS, file, pathEnv, dir string) (string, error) {
	if file == "" {
		return "", errdefs.InvalidArgument("empty executable name")
	}
	if strings.Contains(file, "/") {
		p := file
		if !path.IsAbs(p) {
			p = path.Join(dir, p)
		}
		if err := isExecutable(root, p); err != nil {
			return "", err
		}
		return path.Clean(p), nil
	}
	for d := range strings.SplitSeq(pathEnv, ":") {
		if d == "" {
			d = dir
		}
		if !path.IsAbs(d) {
			d = path.Join(dir, d)
		}
		p := path.Join(d, file)
		if isExecutable(root, p) == nil {
			return p, nil
		}
	}
	return "", errdefs.NotFound("executable %q not found in the app's PATH %q", file, pathEnv)
}

// CheckDir checks that the in-root path dir is a directory (after symlinks).
func CheckDir(root fs.FS, dir string) error {
	fi, err := fs.Stat(root, rootRel(dir))
	if err != nil {
		return errdefs.With(errdefs.ErrNotFound, fmt.Errorf("working directory %s: %w", dir, err))
	}
	if !fi.IsDir() {
		return errdefs.FailedPrecondition("working directory %s is not a directory", dir)
	}
	return nil
}

func isExecutable(root fs.FS, p string) error {
	fi, err := fs.Stat(root, rootRel(p))
	if err != nil {
		return errdefs.With(errdefs.ErrNotFound, fmt.Errorf("executable %s: %w", p, err))
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return errdefs.PermissionDenied("executable %s is not an executable regular file", p)
	}
	return nil
}

// rootRel turns an absolute in-root path into the unrooted form fs.FS
// takes.
func rootRel(p string) string {
	c := path.Clean("/" + p)
	if c == "/" {
		return "."
	}
	return c[1:]
}
