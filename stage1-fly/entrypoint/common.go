package entrypoint

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/stage1/entry"
)

// Flavor names stage1-fly in its logs and error lines.
const Flavor entry.Flavor = "fly"

// NewLogger returns the stage1 logger (entry.Flavor.Logger).
func NewLogger(w io.Writer, debug bool) *slog.Logger { return Flavor.Logger(w, debug) }

// DebugFromEnv reports whether stage0 asked for debug output through the
// environment (entry.DebugFromEnv), for the entrypoints whose argv has no
// --debug.
func DebugFromEnv() bool { return entry.DebugFromEnv() }

// ErrorLine formats err as the single stderr line of a failed entrypoint.
func ErrorLine(err error) string { return Flavor.ErrorLine(err) }

// readPID reads a pid file: a decimal number, optionally followed by a
// newline.
func readPID(path string) (int, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q is not a process id", path, data)
	}
	return pid, nil
}
