//go:build functional

package security

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/internal/testutil/mdstest"
)

// TestMetadataTokenNotInArgv is class 5 of Documentation/security.md: the
// pod's metadata service token is its identity towards the service (its
// manifest, signatures made as the pod). A local user, here `nobody`,
// reads every process's command line; no command line may carry it.
func TestMetadataTokenNotInArgv(t *testing.T) {
	setpriv := testutil.RequiresCommand(t, "setpriv")
	e := newEnv(t)
	socket := mdstest.Start(t, nscnBin(t), false).Socket
	im := image{name: "example.com/mds", app: app("0", "0", "/bin/sh", "-c", `echo "$AC_METADATA_URL" > /tmp/url; sleep 60`)}
	uuid := e.start(runArgs(t, nspawn, "--mds-register", "--mds-socket="+socket, im.build(t))...)
	tok, err := os.ReadFile(filepath.Join(e.podDir(), "mds-token"))
	if err != nil {
		t.Fatalf("the pod's token file: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(e.podDir(), "mds-token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the token file's mode is %v (%v), want 0600", fi.Mode(), err)
	}
	token := strings.TrimSpace(string(tok))
	// The app got it, through the environment stage1 gave it.
	r := e.ok("enter", uuid, "/bin/cat", "/tmp/url")
	if !strings.Contains(r.stdout, token) {
		t.Fatalf("the app's AC_METADATA_URL %q does not carry the pod's token", r.stdout)
	}
	// Every command line on the host, as nobody.
	out, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", //nolint:gosec // G204: a fixed tool, argv built by the test
		"/bin/sh", "-c", `for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f" 2>/dev/null; echo; done`).Output()
	if err != nil {
		t.Fatalf("read command lines as nobody: %v", err)
	}
	if !strings.Contains(string(out), uuid) {
		t.Fatalf("nobody saw no command line of the pod (%d bytes read): the test is blind", len(out))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, token) || strings.Contains(line, "--mds-token=") {
			t.Errorf("nobody reads the metadata token in a command line: %s", line)
		}
	}
	// Nor the file.
	if err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "cat", filepath.Join(e.podDir(), "mds-token")).Run(); err == nil { //nolint:gosec // G204: a fixed tool, argv built by the test
		t.Errorf("nobody reads the pod's token file")
	}
}
