package apphelper

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/testutil"
)

// TestRestrictPaths applies read-only and masked paths in a rootfs of
// tmpfs mounts, in a mount namespace of a thread of its own, and checks
// what /proc/thread-self/mountinfo and the files then show: a read-only
// path that is a mount root is read-only and private in place with the
// mounts below it (no second copy), one that is not gets a read-only
// clone on top, a masked directory an empty read-only tmpfs, a masked
// file the null device.
func TestRestrictPaths(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	type view struct {
		mountinfo       []string // mount point (relative to dir), options, optional fields
		sysWrite, sub   error    // writes below the read-only mount root and its submount
		plainWrite      error    // a write below the read-only directory that is no mount root
		maskedDir       []os.DirEntry
		maskedFileIsNul bool
		err             error
	}
	var v view
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread's mount namespace dies with it
		if v.err = unix.Unshare(unix.CLONE_NEWNS); v.err != nil {
			return
		}
		if v.err = unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); v.err != nil {
			return
		}
		// The rootfs: sys (a shared tmpfs with a submount, as the pod's
		// /sys bind is a peer of the pod's), plain (a directory), mask
		// (a directory and a file).
		must := func(err error) {
			if err != nil && v.err == nil {
				v.err = err
			}
		}
		sys, sub := filepath.Join(dir, "sys"), filepath.Join(dir, "sys", "fs")
		must(os.MkdirAll(sys, 0o755))
		must(unix.Mount("tmpfs", sys, "tmpfs", 0, ""))
		must(unix.Mount("", sys, "", unix.MS_SHARED, ""))
		must(os.MkdirAll(sub, 0o755))
		must(unix.Mount("tmpfs", sub, "tmpfs", 0, ""))
		must(os.MkdirAll(filepath.Join(dir, "plain"), 0o755))
		must(os.MkdirAll(filepath.Join(dir, "mask", "d"), 0o755))
		must(os.WriteFile(filepath.Join(dir, "mask", "d", "secret"), []byte("x"), 0o600))
		must(os.WriteFile(filepath.Join(dir, "mask", "f"), []byte("secret"), 0o600))
		if v.err != nil {
			return
		}
		root, err := inroot.OpenRoot(dir)
		if err != nil {
			v.err = err
			return
		}
		defer func() { _ = root.Close() }()
		p := isolate.Paths{ReadOnly: []string{"/sys", "/plain", "/absent"}, Masked: []string{"/mask/d", "/mask/f", "/absent"}}
		if v.err = restrictPaths(t.Context(), slog.New(slog.NewTextHandler(io.Discard, nil)), root, p); v.err != nil {
			return
		}
		b, err := os.ReadFile("/proc/thread-self/mountinfo")
		if err != nil {
			v.err = err
			return
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 7 || !strings.HasPrefix(f[4], dir+"/") {
				continue
			}
			opt := strings.Join(f[6:slicesIndex(f, "-")], " ")
			v.mountinfo = append(v.mountinfo, strings.TrimPrefix(f[4], dir)+" "+strings.Split(f[5], ",")[0]+" "+opt)
		}
		v.sysWrite = os.WriteFile(filepath.Join(sys, "x"), nil, 0o600)
		v.sub = os.WriteFile(filepath.Join(sub, "x"), nil, 0o600)
		v.plainWrite = os.WriteFile(filepath.Join(dir, "plain", "x"), nil, 0o600)
		v.maskedDir, _ = os.ReadDir(filepath.Join(dir, "mask", "d"))
		var st unix.Stat_t
		v.maskedFileIsNul = unix.Stat(filepath.Join(dir, "mask", "f"), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(1, 3)
	}()
	<-done
	if v.err != nil {
		t.Fatal(v.err)
	}
	want := []string{
		"/sys ro ",    // in place: read-only, private (no shared: or master:)
		"/sys/fs ro ", // and the mount below it
		"/plain ro ",  // a clone on top of a directory that is no mount root
		"/mask/d ro ", // an empty read-only tmpfs
		"/mask/f ro",  // the null device (a bind of a file, master: of the host's /dev)
	}
	got := strings.Join(v.mountinfo, "\n")
	for _, w := range want {
		if !strings.Contains(got+"\n", w) {
			t.Errorf("mountinfo has no line %q:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "/sys "); n != 1 {
		t.Errorf("/sys is mounted %d times, want once (in place, not stacked):\n%s", n, got)
	}
	for name, err := range map[string]error{"/sys/x": v.sysWrite, "/sys/fs/x": v.sub, "/plain/x": v.plainWrite} {
		if err == nil {
			t.Errorf("writing %s succeeded, want a read-only file system", name)
		}
	}
	if len(v.maskedDir) != 0 {
		t.Errorf("the masked directory lists %d entries, want none", len(v.maskedDir))
	}
	if !v.maskedFileIsNul {
		t.Error("the masked file is not the null device")
	}
}

func slicesIndex(f []string, s string) int {
	for i, x := range f {
		if x == s {
			return i
		}
	}
	return len(f)
}
