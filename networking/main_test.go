package networking

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// pluginDir holds the CNI plugins for the root tests: $NSCN_CNI_PLUGIN_DIR
// when set (make builds them there), otherwise built once per test binary
// by scripts/build-cni-plugins.sh. Empty when not root.
var pluginDir, pluginErr = "", error(nil)

func TestMain(m *testing.M) {
	var tmp string
	if os.Geteuid() == 0 {
		if d := os.Getenv("NSCN_CNI_PLUGIN_DIR"); d != "" {
			pluginDir = d
		} else {
			tmp, pluginErr = os.MkdirTemp("", "nscn-cni-plugins-")
			if pluginErr == nil {
				pluginDir = tmp
				pluginErr = buildPlugins(tmp)
			}
		}
	}
	// Returning passes m.Run's status to os.Exit.
	m.Run()
	if tmp != "" {
		_ = os.RemoveAll(tmp)
	}
}

func buildPlugins(out string) error {
	// go test puts its own GOROOT/bin first in the test's PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build CNI plugins: %w", err)
	}
	cmd := exec.Command("../scripts/build-cni-plugins.sh", out) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Env = append(os.Environ(), "GO="+goBin)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build CNI plugins: %w\n%s", err, b)
	}
	return nil
}

func plugins(t *testing.T) string {
	t.Helper()
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	if pluginDir == "" {
		t.Fatal("no CNI plugins")
	}
	return pluginDir
}
