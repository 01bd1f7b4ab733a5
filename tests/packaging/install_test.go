//go:build functional

package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/internal/testutil/e2e"
)

// TestMakeInstall runs a pod from the tree make install laid out
// (NSCN_INSTALL_DESTDIR, installed for NSCN_INSTALL_PREFIX): the binary
// finds its default stage1 in the image directory compiled in for that
// prefix, with nothing beside it. The prefix is mounted where it was
// installed for, in a mount namespace of the test's own, so that the host
// is left as it was.
func TestMakeInstall(t *testing.T) {
	testutil.RequiresRoot(t)
	destdir, prefix := mustEnv(t, "NSCN_INSTALL_DESTDIR"), mustEnv(t, "NSCN_INSTALL_PREFIX")
	if !strings.HasPrefix(prefix, "/opt/") {
		t.Fatalf("NSCN_INSTALL_PREFIX %s: the test mounts a tmpfs on /opt, want a prefix under it", prefix)
	}
	for _, p := range []string{
		"bin/nscn",
		"lib/nscn/stage1-images/stage1-nspawn.aci",
		"lib/nscn/stage1-images/stage1-fly.aci",
		"share/man/man1/nscn.1",
		"share/man/man1/nscn-run.1",
		"share/bash-completion/completions/nscn",
		"share/zsh/vendor-completions/_nscn",
		"lib/systemd/system/nscn-gc.timer",
		"lib/tmpfiles.d/nscn.conf",
		"lib/sysusers.d/nscn.conf",
	} {
		if _, err := os.Stat(filepath.Join(destdir, prefix, p)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(destdir, prefix, "lib/systemd/system/nscn-gc.service")) //nolint:gosec // G304: a file of the tree make install laid out
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart="+prefix+"/bin/nscn gc") {
		t.Errorf("nscn-gc.service does not run the installed binary:\n%s", unit)
	}

	// Empty config dirs: no stage1.d or paths.d of the host decides.
	data, cfg := t.TempDir(), t.TempDir()
	busybox := filepath.Join(mustEnv(t, "NSCN_IMAGES"), "busybox.aci")
	script := `set -e
mount -t tmpfs nscn-install-test /opt
mkdir -p "$2"
mount --bind "$1$2" "$2"
"$2/bin/nscn" --dir="$3" --local-config="$5" --system-config="$5" config
"$2/bin/nscn" --dir="$3" --local-config="$5" --system-config="$5" --insecure-options=image run --net=host --uuid-file-save="$6" "$4" --exec=/bin/sh -- -c 'echo pod from the installed tree'
"$2/bin/nscn" --dir="$3" --local-config="$5" --system-config="$5" gc --grace-period=0s
`
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	args := []string{"--mount", "--propagation=private", "--", "sh", "-c", script, "sh", destdir, prefix, data, busybox, cfg, uuidFile}
	out, err := exec.CommandContext(t.Context(), "unshare", args...).CombinedOutput() //nolint:gosec // G204: a fixed tool, argv built by the test
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("run from the installed tree: %v", err)
	}
	if !strings.Contains(string(out), `"`+prefix+`/lib/nscn/stage1-images/stage1-nspawn.aci"`) {
		t.Errorf("nscn config does not name the installed default stage1")
	}
	if !strings.Contains(string(out), "pod from the installed tree") {
		t.Errorf("the pod's output is missing")
	}
	// The installed stage1's gc entrypoint removed what the pod made on
	// the host: before it was run here, every run of this suite left
	// the pod's cgroups (nscn/UUID) in the host's hierarchies.
	uuid, err := os.ReadFile(uuidFile) //nolint:gosec // G304: the test's own file
	if err != nil {
		t.Fatal(err)
	}
	for _, cg := range e2e.PodCgroupsLeft(strings.TrimSpace(string(uuid))) {
		t.Errorf("the pod's cgroup %s is left after gc", cg)
	}
}
