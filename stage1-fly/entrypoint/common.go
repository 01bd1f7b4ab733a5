package entrypoint

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// HelperArg is argv[1] of the hidden pod process mode of the run binary.
// stage0 never passes it: its run argv starts with flags or the UUID.
const HelperArg = "fly-pod-process"

// NewLogger returns the stage1 logger: text on w, debug level when debug
// is set, warnings and errors only otherwise (the app shares the
// terminal).
func NewLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelWarn
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("flavor", "fly")
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

// errorClasses are the errdefs classes carried across the report pipe.
var errorClasses = []error{
	errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
	errdefs.ErrFailedPrecondition, errdefs.ErrNotImplemented, errdefs.ErrUnavailable,
	errdefs.ErrPermissionDenied,
}

// className names err's errdefs class, or "".
func className(err error) string {
	for _, c := range errorClasses {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	return ""
}

// withClass rebuilds an error sent as message and class name.
func withClass(msg, class string) error {
	err := errors.New(msg)
	for _, c := range errorClasses {
		if c.Error() == class {
			return errdefs.With(c, err)
		}
	}
	return err
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
