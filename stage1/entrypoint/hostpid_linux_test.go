package entrypoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
)

// TestCheckStdio: the spawner takes pipes, sockets, character devices
// and regular files as an app's stdio, and refuses a directory or an
// O_PATH handle (a way around the app's root) in any place.
func TestCheckStdio(t *testing.T) {
	dir := t.TempDir()
	open := func(p string, flags int) *os.File {
		t.Helper()
		fd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), p)
		t.Cleanup(func() { _ = f.Close() })
		return f
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(fds[0]), "socket")
	t.Cleanup(func() { _ = sock.Close(); _ = unix.Close(fds[1]) })
	null := open("/dev/null", unix.O_RDWR)
	file := open(filepath.Join(dir, "log"), unix.O_CREAT|unix.O_WRONLY)
	tests := []struct {
		name  string
		files []*os.File
		ok    bool
	}{
		{name: "pipes", files: []*os.File{r, w, w}, ok: true},
		{name: "null, socket, file", files: []*os.File{null, sock, file}, ok: true},
		{name: "a directory as stdin", files: []*os.File{open(dir, unix.O_RDONLY|unix.O_DIRECTORY), w, w}},
		{name: "an O_PATH handle as stdout", files: []*os.File{null, open(dir, unix.O_PATH), w}},
		{name: "an O_PATH handle of a file as stderr", files: []*os.File{null, w, open(filepath.Join(dir, "log"), unix.O_PATH)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkStdio(tt.files)
			if tt.ok && err != nil {
				t.Fatalf("checkStdio = %v, want accepted", err)
			}
			if !tt.ok && !errors.Is(err, errdefs.ErrPermissionDenied) {
				t.Fatalf("checkStdio = %v, want %v", err, errdefs.ErrPermissionDenied)
			}
		})
	}
}

// TestProbePeerPidfd: the kernels nscn is developed on (6.13 and
// later) give a peer's pidfd and its pid; an older one fails the probe,
// and with it --pid=parent, before the pod starts.
func TestProbePeerPidfd(t *testing.T) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	err := probePeerPidfd()
	t.Logf("kernel %s: probe %v", release, err)
	var major, minor int
	if _, serr := fmt.Sscanf(release, "%d.%d", &major, &minor); serr == nil && (major > 6 || major == 6 && minor >= 13) {
		if err != nil {
			t.Fatalf("probePeerPidfd on Linux %s = %v, want support", release, err)
		}
		return
	}
	if err != nil && !errors.Is(err, unix.ENOPROTOOPT) && !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EINVAL) {
		t.Fatalf("probePeerPidfd = %v: neither support nor a missing kernel feature", err)
	}
}
