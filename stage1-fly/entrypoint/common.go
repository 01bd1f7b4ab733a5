package entrypoint

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/logstyle"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// NewLogger returns the stage1 logger: text on w, debug level when debug
// is set, warnings and errors only otherwise (the app shares the
// terminal).
func NewLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelWarn
	if debug {
		level = slog.LevelDebug
	}
	return logstyle.New(w, level, debug).With("flavor", "fly")
}

// DebugFromEnv reports whether stage0 asked for debug output through the
// environment (stage1abi.EnvStage1Debug), for the entrypoints whose argv
// has no --debug.
func DebugFromEnv() bool {
	v, err := strconv.ParseBool(os.Getenv(stage1abi.EnvStage1Debug))
	return err == nil && v
}

// ErrorLine formats err as the single stderr line of a failed entrypoint.
func ErrorLine(err error) string {
	return "stage1-fly: " + strings.Join(strings.Fields(err.Error()), " ")
}

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
