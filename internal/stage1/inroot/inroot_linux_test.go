package inroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// hostileTree builds a root with symlinks that point outside it, and an
// outside directory that must stay empty (checked at cleanup).
func hostileTree(t *testing.T) (root *os.File, rootDir string) {
	t.Helper()
	rootDir = t.TempDir()
	outside := t.TempDir()
	for name, target := range map[string]string{
		"abs":      outside,
		"up":       "../../../../../../..",
		"dangling": filepath.Join(outside, "missing"),
		"dirlink":  "realdir",
		"absin":    "/realdir",
	} {
		if err := os.Symlink(target, filepath.Join(rootDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(rootDir, "realdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootDir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := OpenRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = root.Close()
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Errorf("something was created outside the root: %v", ents)
		}
	})
	return root, rootDir
}

func TestMkdirAll(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		wantDir  string // created, relative to the root dir
		wantErr  bool
		wantErrn error
	}{
		{name: "plain", path: "/a/b/c", wantDir: "a/b/c"},
		{name: "root itself", path: "/", wantDir: "."},
		{name: "dot dot is clamped", path: "/../../x", wantDir: "x"},
		{name: "absolute symlink resolves in root", path: "/absin/y", wantDir: "realdir/y"},
		{name: "absolute symlink out of the root dangles", path: "/abs/tmp/y", wantErr: true, wantErrn: unix.ENOENT},
		{name: "relative symlink stays inside", path: "/up/z", wantDir: "z"},
		{name: "symlink to a dir inside", path: "/dirlink/sub", wantDir: "realdir/sub"},
		{name: "file in the way", path: "/file/x", wantErr: true, wantErrn: unix.ENOTDIR},
		{name: "dangling symlink", path: "/dangling", wantErr: true, wantErrn: unix.ENOENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, rootDir := hostileTree(t)
			f, err := MkdirAll(root, tt.path, 0o755)
			if tt.wantErr {
				if err == nil {
					_ = f.Close()
					t.Fatalf("MkdirAll(%q) succeeded, want error", tt.path)
				}
				if !errors.Is(err, tt.wantErrn) {
					t.Fatalf("MkdirAll(%q) = %v, want %v", tt.path, err, tt.wantErrn)
				}
				return
			}
			if err != nil {
				t.Fatalf("MkdirAll(%q): %v", tt.path, err)
			}
			defer func() { _ = f.Close() }()
			want := filepath.Join(rootDir, tt.wantDir)
			var got, exp unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &got); err != nil {
				t.Fatal(err)
			}
			if err := unix.Stat(want, &exp); err != nil {
				t.Fatalf("%s was not created: %v", want, err)
			}
			if got.Ino != exp.Ino || got.Dev != exp.Dev {
				t.Errorf("handle does not point at %s", want)
			}
		})
	}
}

func TestCreateFile(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		wantFile string
		wantErr  bool
	}{
		{name: "new file with parents", path: "/etc/hosts", wantFile: "etc/hosts"},
		{name: "existing file", path: "/file", wantFile: "file"},
		{name: "through absolute symlink", path: "/absin/resolv.conf", wantFile: "realdir/resolv.conf"},
		{name: "through escaping symlink", path: "/abs/resolv.conf", wantErr: true},
		{name: "directory in the way", path: "/realdir", wantErr: true},
		{name: "dangling symlink is not followed out", path: "/dangling", wantErr: true},
		{name: "root", path: "/", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, rootDir := hostileTree(t)
			f, err := CreateFile(root, tt.path, 0o644)
			if tt.wantErr {
				if err == nil {
					_ = f.Close()
					t.Fatalf("CreateFile(%q) succeeded, want error", tt.path)
				}
				return
			}
			if err != nil {
				t.Fatalf("CreateFile(%q): %v", tt.path, err)
			}
			_ = f.Close()
			want := filepath.Join(rootDir, tt.wantFile)
			if st, err := os.Lstat(want); err != nil || !st.Mode().IsRegular() {
				t.Fatalf("%s is not a regular file: %v", want, err)
			}
		})
	}
}

func TestExists(t *testing.T) {
	root, _ := hostileTree(t)
	tests := []struct {
		name string
		path string
		want bool
	}{
		{name: "file", path: "/file", want: true},
		{name: "missing", path: "/nope", want: false},
		{name: "dangling symlink", path: "/dangling", want: false},
		{name: "symlink to dir", path: "/dirlink", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Exists(root, tt.path)
			if err != nil || got != tt.want {
				t.Errorf("Exists(%q) = %v, %v; want %v", tt.path, got, err, tt.want)
			}
		})
	}
}

func TestOpenNoSymlinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{name: "real dir", path: filepath.Join(dir, "real")},
		{name: "symlink", path: filepath.Join(dir, "link"), wantErr: unix.ELOOP},
		{name: "through symlink", path: filepath.Join(dir, "link", "x"), wantErr: unix.ELOOP},
		{name: "missing", path: filepath.Join(dir, "missing"), wantErr: unix.ENOENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := OpenNoSymlinks(tt.path, unix.O_PATH)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("OpenNoSymlinks(%q): %v", tt.path, err)
				}
				_ = f.Close()
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("OpenNoSymlinks(%q) = %v, want %v", tt.path, err, tt.wantErr)
			}
		})
	}
	if _, err := OpenNoSymlinks("relative", unix.O_PATH); err == nil {
		t.Error("OpenNoSymlinks accepted a relative path")
	}
}
