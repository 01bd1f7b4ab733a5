//go:build functional

package security

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// asNobody runs argv as the user nobody, with no supplementary group,
// and returns its combined output and whether it succeeded.
func asNobody(t *testing.T, argv ...string) (string, bool) {
	t.Helper()
	args := append([]string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"}, argv...)
	out, err := exec.Command("setpriv", args...).CombinedOutput() //nolint:gosec // G204: a fixed tool, argv built by the test
	return string(out), err == nil
}

// openUp makes every directory above e's data directory searchable by
// everyone, as /var/lib is, so that only the data directory's own modes
// keep other users out.
func openUp(t *testing.T, e *env) {
	t.Helper()
	for d := filepath.Dir(e.dir); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil { //nolint:gosec // G302: a directory, which needs x to be searched
			t.Fatal(err)
		}
	}
}

// TestDataDirNotReadableByOthers is class 7 of Documentation/security.md:
// another user of the host reads the image store or the pods ("Least
// privilege on disk"). The data
// directory nscn creates, the store's blobs and index.db give other users
// nothing, and the user nobody can read neither index.db nor a pod's
// directory. A data directory an older nscn left world-readable is
// tightened by the first command that writes.
func TestDataDirNotReadableByOthers(t *testing.T) {
	for _, tt := range []struct {
		name    string
		oldMode os.FileMode // of a data directory made before; 0: none
	}{
		{name: "new data directory"},
		{name: "world-readable data directory from before", oldMode: 0o755},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			openUp(t, e)
			if tt.oldMode != 0 {
				if err := os.Mkdir(e.dir, tt.oldMode); err != nil {
					t.Fatal(err)
				}
			}
			aci := image{name: "example.com/perms", app: app("0", "0", "/bin/true")}.build(t)
			e.ok("--insecure-options=image", "fetch", aci)
			e.ok(runArgs(t, fly, aci)...)

			index := filepath.Join(e.dir, "cas", "db", "index.db")
			blobs, _ := filepath.Glob(filepath.Join(e.dir, "cas", "blob", "sha512", "*", "sha512-*"))
			if len(blobs) == 0 {
				t.Fatal("no blob in the store")
			}
			for _, p := range append([]string{e.dir, filepath.Join(e.dir, "cas"), filepath.Join(e.dir, "pods"), index, e.podDir()}, blobs...) {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm()&0o007 != 0 {
					t.Errorf("%s is %v: every user may use it", p, fi.Mode())
				}
			}
			// Without an nscn group (this host has none), the data
			// directory is root's alone.
			if _, err := exec.Command("getent", "group", "nscn").Output(); err != nil {
				fi, _ := os.Stat(e.dir)
				if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o700 || st.Uid != 0 {
					t.Errorf("data directory %v owned by %d, want 0700 root", fi.Mode(), st.Uid)
				}
			}
			for _, argv := range [][]string{{"cat", index}, {"cat", blobs[0]}, {"ls", filepath.Join(e.dir, "pods")}, {"ls", e.podDir()}, {nscnBin(t), "--dir", e.dir, "image", "list"}} {
				if out, ok := asNobody(t, argv...); ok {
					t.Errorf("nobody ran %s:\n%s", strings.Join(argv, " "), out)
				}
			}
		})
	}
}
