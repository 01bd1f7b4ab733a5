package apphelper

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// createCredsRecord opens (truncating) the record of app's credentials,
// in the pod's view, before the helper leaves it for the app's root.
func createCredsRecord(app string) (*os.File, error) {
	p := sdpod.CredsFile(app)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("app %s: create credentials record: %w", app, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600) //nolint:gosec // G304: the pod's state directory, which no app can reach
	if err != nil {
		return nil, fmt.Errorf("app %s: create credentials record: %w", app, err)
	}
	return f, nil
}

// writeCredsRecord writes c to the record f and closes it.
func writeCredsRecord(f *os.File, c appspec.Creds) error {
	b, err := sdpod.EncodeAppCreds(sdpod.AppCreds{UID: c.UID, GID: c.GID, Groups: c.Groups})
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("write credentials record: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write credentials record: %w", err)
	}
	return nil
}

// maxCredsRecord bounds what enter reads of a record; ParseAppCreds
// refuses a longer one.
const maxCredsRecord = 1 << 20

// ReadCredsRecord reads the record of app's credentials from the pod
// directory, on the host.
func ReadCredsRecord(podDir, app string) (appspec.Creds, error) {
	p := inStage1(podDir, sdpod.CredsFile(app))
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return appspec.Creds{}, errdefs.FailedPrecondition("app %s has not started yet: there is no user to enter it as", app)
	}
	if err != nil {
		return appspec.Creds{}, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxCredsRecord+1))
	if err != nil {
		return appspec.Creds{}, fmt.Errorf("read credentials record: %w", err)
	}
	c, err := sdpod.ParseAppCreds(b)
	if err != nil {
		return appspec.Creds{}, fmt.Errorf("app %s: %w", app, err)
	}
	return appspec.Creds{UID: c.UID, GID: c.GID, Groups: c.Groups}, nil
}

// inStage1 is the host path of a pod path (sdpod.PodConfigFile, …).
func inStage1(podDir, podPath string) string {
	return filepath.Join(podDir, stage1abi.Stage1RootfsRel, podPath)
}

// oneLine formats err on a single line, as the app helper's sync pipe and
// the entrypoints' stderr carry it.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
