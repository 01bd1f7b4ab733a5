package stage1

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

// treeFixture is a tree directory as the store leaves one: <tree>/rootfs,
// holding an executable /bin/entry, with everything else the cases add.
func treeFixture(t *testing.T) (treeDir, rootfs string) {
	t.Helper()
	treeDir = filepath.Join(t.TempDir(), "deps-sha512-x")
	rootfs = filepath.Join(treeDir, "rootfs")
	for _, d := range []string{filepath.Join(rootfs, "bin"), filepath.Join(rootfs, "open")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(treeDir, 0o700); err != nil { //nolint:gosec // G302: a directory, mode 0700 as the store makes them
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "entry"), []byte("#!/bin/sh\n"), 0o755); err != nil { //nolint:gosec // G306: an executable
		t.Fatal(err)
	}
	return treeDir, rootfs
}

func TestResolveEntrypoint(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "evil")
	if err := os.WriteFile(outside, []byte("#!/bin/sh\n"), 0o755); err != nil { //nolint:gosec // G306: an executable
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		setup      func(t *testing.T, rootfs string)
		entrypoint string
		want       string // relative to rootfs; "" with class
		class      error
	}{
		{name: "plain", entrypoint: "/bin/entry", want: "bin/entry"},
		{name: "relative and unclean", entrypoint: "bin/../bin/./entry", want: "bin/entry"},
		{name: "dot-dot stops at the root", entrypoint: "/../../../bin/entry", want: "bin/entry"},
		{
			name:       "absolute symlink resolved in the tree",
			setup:      func(t *testing.T, rootfs string) { symlink(t, "/bin/entry", filepath.Join(rootfs, "run")) },
			entrypoint: "/run", want: "bin/entry",
		},
		{
			name:       "relative symlink resolved in the tree",
			setup:      func(t *testing.T, rootfs string) { symlink(t, "../bin/entry", filepath.Join(rootfs, "open", "run")) },
			entrypoint: "/open/run", want: "bin/entry",
		},
		{
			name:       "symlink out of the tree stays in it",
			setup:      func(t *testing.T, rootfs string) { symlink(t, outside, filepath.Join(rootfs, "run")) },
			entrypoint: "/run", class: errdefs.ErrFailedPrecondition,
		},
		{
			name:       "symlinked directory out of the tree stays in it",
			setup:      func(t *testing.T, rootfs string) { symlink(t, filepath.Dir(outside), filepath.Join(rootfs, "up")) },
			entrypoint: "/up/evil", class: errdefs.ErrFailedPrecondition,
		},
		{name: "missing", entrypoint: "/bin/none", class: errdefs.ErrFailedPrecondition},
		{name: "a directory", entrypoint: "/bin", class: errdefs.ErrFailedPrecondition},
		{
			name:       "not executable",
			setup:      func(t *testing.T, rootfs string) { chmod(t, filepath.Join(rootfs, "bin", "entry"), 0o644) },
			entrypoint: "/bin/entry", class: errdefs.ErrFailedPrecondition,
		},
		{
			name:       "writable by others",
			setup:      func(t *testing.T, rootfs string) { chmod(t, filepath.Join(rootfs, "bin", "entry"), 0o757) },
			entrypoint: "/bin/entry", class: errdefs.ErrFailedPrecondition,
		},
		{
			name:       "writable by the group",
			setup:      func(t *testing.T, rootfs string) { chmod(t, filepath.Join(rootfs, "bin", "entry"), 0o775) },
			entrypoint: "/bin/entry", class: errdefs.ErrFailedPrecondition,
		},
		{
			name:       "in a directory others may write",
			setup:      func(t *testing.T, rootfs string) { chmod(t, filepath.Join(rootfs, "bin"), 0o777) },
			entrypoint: "/bin/entry", class: errdefs.ErrFailedPrecondition,
		},
		{
			name:       "in a tree others may write",
			setup:      func(t *testing.T, rootfs string) { chmod(t, filepath.Dir(rootfs), 0o777) },
			entrypoint: "/bin/entry", class: errdefs.ErrFailedPrecondition,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			treeDir, rootfs := treeFixture(t)
			if tt.setup != nil {
				tt.setup(t, rootfs)
			}
			got, err := resolveEntrypoint(treeDir, rootfs, tt.entrypoint)
			if tt.class != nil {
				if !errors.Is(err, tt.class) {
					t.Fatalf("resolveEntrypoint(%s) = %q, %v; want class %v", tt.entrypoint, got, err, tt.class)
				}
				return
			}
			want, _ := filepath.EvalSymlinks(filepath.Join(rootfs, tt.want))
			if err != nil || got != want {
				t.Fatalf("resolveEntrypoint(%s) = %q, %v; want %q", tt.entrypoint, got, err, want)
			}
		})
	}
}

// TestResolveEntrypointOwner: a file or directory of the tree owned by
// another user than root and nscn's is refused. It needs root to chown.
func TestResolveEntrypointOwner(t *testing.T) {
	testutil.RequiresRoot(t)
	tests := []struct {
		name string
		path string // relative to rootfs
	}{
		{name: "file", path: "bin/entry"},
		{name: "directory", path: "bin"},
		{name: "rootfs", path: "."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			treeDir, rootfs := treeFixture(t)
			if err := os.Lchown(filepath.Join(rootfs, tt.path), 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if _, err := resolveEntrypoint(treeDir, rootfs, "/bin/entry"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("resolveEntrypoint = %v, want FailedPrecondition", err)
			}
		})
	}
}

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, name string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
}
