// Package entry is what every stage1 entrypoint does first, whatever its
// flavor: its logger and its one stderr line on failure, stage0's debug
// request from the environment, and the check of the pod lock stage0
// hands to run (stage1abi.EnvLockFD).
package entry

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Flavor names a stage1 flavor ("nspawn", "fly") in its logs and error
// lines: the one thing of the flavor this package knows.
type Flavor string

// Logger returns the stage1 logger: text on w, tagged with the flavor,
// debug level when debug is set, warnings and errors only otherwise (the
// apps may share the terminal).
func (f Flavor) Logger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelWarn
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("flavor", string(f))
}

// ErrorLine formats err as the single stderr line of a failed
// entrypoint: "stage1-FLAVOR: " and the error on one line.
func (f Flavor) ErrorLine(err error) string {
	return "stage1-" + string(f) + ": " + strings.Join(strings.Fields(err.Error()), " ")
}

// DebugFromEnv reports whether stage0 asked for debug output through the
// environment (stage1abi.EnvStage1Debug), for the entrypoints whose argv
// has no --debug.
func DebugFromEnv() bool {
	v, err := strconv.ParseBool(os.Getenv(stage1abi.EnvStage1Debug))
	return err == nil && v
}

// CheckLockFD checks that v, the value of stage1abi.EnvLockFD, is a
// descriptor on the pod directory, and makes it close-on-exec: run keeps
// it until the pod has ended, and nothing it starts inherits it.
func CheckLockFD(v, podDir string) error {
	if v == "" {
		return errdefs.FailedPrecondition("%s is not set: stage0 must pass the pod lock", stage1abi.EnvLockFD)
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return errdefs.InvalidArgument("%s=%q is not a descriptor number above 2", stage1abi.EnvLockFD, v)
	}
	var got, want unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		return errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("%s=%d: %w", stage1abi.EnvLockFD, fd, &os.SyscallError{Syscall: "fstat", Err: err}))
	}
	if err := unix.Stat(podDir, &want); err != nil {
		return &os.PathError{Op: "stat", Path: podDir, Err: err}
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		return errdefs.InvalidArgument("%s=%d is not a descriptor on the pod directory", stage1abi.EnvLockFD, fd)
	}
	unix.CloseOnExec(fd)
	return nil
}
