package entrypoint

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/entry"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Flavor names stage1-nspawn in its logs and error lines.
const Flavor entry.Flavor = "nspawn"

// NewLogger returns the stage1 logger (entry.Flavor.Logger).
func NewLogger(w io.Writer, debug bool) *slog.Logger { return Flavor.Logger(w, debug) }

// DebugFromEnv reports whether stage0 asked for debug output through the
// environment (entry.DebugFromEnv).
func DebugFromEnv() bool { return entry.DebugFromEnv() }

// ErrorLine formats err as the single stderr line of a failed entrypoint.
func ErrorLine(err error) string { return Flavor.ErrorLine(err) }

// writeNewFile writes a file that must not exist yet (O_EXCL|O_NOFOLLOW).
func writeNewFile(p string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	return f.Close()
}

// readInt reads a file holding a decimal number and a newline.
func readInt(p string) (int, error) {
	data, err := os.ReadFile(p) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", p, data)
	}
	return n, nil
}

// imageRoot is the host path of the rootfs of the stage1 image this
// entrypoint was executed from: stage0 runs the entrypoints from the
// store's rendered tree of the image, which no pod can write. What the
// entrypoints run on the host (systemd-nspawn and its loader, the CNI
// plugins) comes from there too, never from the pod's copy (inStage1),
// which the pod's own processes could change. An entrypoint is
// /nscn/NAME in the image.
func imageRoot() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the stage1 image: %w", err)
	}
	return filepath.Dir(filepath.Dir(exe)), nil
}

// inStage1 is the host path of a pod path (sdpod.PodConfigFile, …).
func inStage1(podDir, podPath string) string {
	return filepath.Join(podDir, stage1abi.Stage1RootfsRel, podPath)
}
