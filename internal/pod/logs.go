package pod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// HasLogs reports whether the pod's stage1 records app logs: it created
// stage1abi.LogsDir when the pod started.
func (p *Pod) HasLogs(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	root, err := p.openRoot()
	if err != nil {
		return false, err
	}
	defer func() { _ = root.Close() }()
	st, err := root.Lstat(stage1abi.LogsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	return st.IsDir(), nil
}

// OpenAppLog opens an app's log file (stage1abi.AppLogFile) for reading.
// The open file stays valid when the pod directory moves (exited pods,
// gc). A missing file is errdefs.ErrNotFound.
func (p *Pod) OpenAppLog(ctx context.Context, app string) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := p.openRoot()
	if err != nil {
		return nil, err
	}
	defer func() { _ = root.Close() }()
	f, err := root.OpenFile(stage1abi.AppLogFile(app), os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, fmt.Errorf("open log of app %s: %w", app, classifyNotExist(err))
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open log of app %s: %w", app, err)
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, errdefs.FailedPrecondition("log of app %s in pod %s is not a regular file", app, p.UUID)
	}
	return f, nil
}

// JournalDir returns the host path of the directory of the pod's journal
// files (stage1abi.JournalDir/MACHINE-ID), or "" when the pod's stage1
// keeps no journal.
func (p *Pod) JournalDir(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	root, err := p.openRoot()
	if err != nil {
		return "", err
	}
	defer func() { _ = root.Close() }()
	rel := filepath.Join(stage1abi.JournalDir, stage1abi.MachineID(p.UUID))
	st, err := root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	if !st.IsDir() {
		return "", errdefs.FailedPrecondition("journal of pod %s is not a directory", p.UUID)
	}
	return filepath.Join(p.Path, rel), nil
}
