package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/proctree"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// pidPoll is how often WaitPID looks for the pid file.
const pidPoll = 20 * time.Millisecond

// openRoot opens the pod directory as an os.Root, following the pod if it
// moved. Files are then read relative to the directory itself, so a later
// move does not matter, and no path inside the pod can lead outside it.
func (p *Pod) openRoot() (*os.Root, error) {
	for range maxRelocations {
		r, err := os.OpenRoot(p.Path)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || p.lk != nil {
			return nil, fmt.Errorf("open pod %s: %w", p.UUID, classifyNotExist(err))
		}
		d, err := locate(p.dataDir, p.UUID)
		if err != nil {
			return nil, err
		}
		p.setDir(d)
	}
	return nil, errdefs.Unavailable("open pod %s: it kept moving", p.UUID)
}

func classifyNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.With(errdefs.ErrNotFound, err)
	}
	return err
}

// readRegular reads the regular file rel of the pod, at most limit bytes.
// A missing file is errdefs.ErrNotFound.
func readRegular(root *os.Root, rel string, limit int64) ([]byte, fs.FileInfo, error) {
	// O_NONBLOCK: a FIFO planted in the pod must not block the open.
	f, err := root.OpenFile(rel, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, nil, classifyNotExist(err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, errdefs.InvalidArgument("%s is not a regular file", rel)
	}
	// One read of the size fstat gave, plus a byte: a read of a regular
	// file comes back short only at its end, so a short read is the whole
	// file without the extra read to see EOF that io.ReadAll makes (and
	// without its growing from 512 bytes). A file that grew meanwhile is
	// read on to the limit.
	b := make([]byte, min(fi.Size(), limit)+1)
	n, err := f.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("read %s: %w", rel, err)
	}
	full := n == len(b)
	b = b[:n]
	if full && int64(n) <= limit {
		rest, err := io.ReadAll(io.LimitReader(f, limit+1-int64(n)))
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", rel, err)
		}
		b = append(b, rest...)
	}
	if int64(len(b)) > limit {
		return nil, nil, errdefs.InvalidArgument("%s is larger than %d bytes", rel, limit)
	}
	return b, fi, nil
}

// parseDecimal parses the content of a pid or status file: a decimal
// number, optionally surrounded by white space (stage1 writes a trailing
// newline), at least floor.
func parseDecimal(b []byte, floor int) (int, error) {
	s := strings.TrimSpace(string(b))
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, errdefs.InvalidArgument("%q is not a decimal number", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errdefs.With(errdefs.ErrInvalidArgument, err)
	}
	if n < floor {
		return 0, errdefs.InvalidArgument("%d is below %d", n, floor)
	}
	return n, nil
}

// Manifest reads and validates the pod manifest stage0 wrote
// (stage1abi.PodManifestFile). A pod that has none yet is
// errdefs.ErrNotFound; an invalid one errdefs.ErrInvalidArgument.
func (p *Pod) Manifest(ctx context.Context) (*schema.PodManifest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := p.openRoot()
	if err != nil {
		return nil, err
	}
	defer func() { _ = root.Close() }()
	return readManifest(root, p.UUID)
}

func readManifest(root *os.Root, uuid string) (*schema.PodManifest, error) {
	b, _, err := readRegular(root, stage1abi.PodManifestFile, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("read manifest of pod %s: %w", uuid, err)
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(b, &pm); err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("parse manifest of pod %s: %w", uuid, err))
	}
	return &pm, nil
}

// Cgroup returns the pod's cgroup as stage1 recorded it in
// stage1abi.CgroupFile: an absolute path of at most one line. A pod
// whose stage1 wrote none is errdefs.ErrNotFound; a malformed one
// errdefs.ErrInvalidArgument.
func (p *Pod) Cgroup(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	root, err := p.openRoot()
	if err != nil {
		return "", err
	}
	defer func() { _ = root.Close() }()
	b, _, err := readRegular(root, stage1abi.CgroupFile, maxSmallFile)
	if err != nil {
		return "", fmt.Errorf("read cgroup of pod %s: %w", p.UUID, err)
	}
	c, err := parseCgroupPath(b)
	if err != nil {
		return "", fmt.Errorf("read cgroup of pod %s: %w", p.UUID, err)
	}
	return c, nil
}

// parseCgroupPath takes one absolute, clean path and an optional
// newline.
func parseCgroupPath(b []byte) (string, error) {
	s := strings.TrimSuffix(string(b), "\n")
	if !strings.HasPrefix(s, "/") || path.Clean(s) != s || strings.ContainsAny(s, "\n\x00") {
		return "", errdefs.InvalidArgument("%q is not an absolute, clean cgroup path", s)
	}
	return s, nil
}

// PID returns the pid of the pod's process as stage1 recorded it: the
// content of stage1abi.PIDFile, or else the only child of the process in
// stage1abi.PPIDFile. Before stage1 wrote either, or while the recorded
// parent has no child or more than one, it fails with errdefs.ErrNotFound.
func (p *Pod) PID(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	root, err := p.openRoot()
	if err != nil {
		return 0, err
	}
	defer func() { _ = root.Close() }()
	b, _, err := readRegular(root, stage1abi.PIDFile, maxSmallFile)
	if err == nil {
		pid, err := parseDecimal(b, 1)
		if err != nil {
			return 0, fmt.Errorf("read pid of pod %s: %w", p.UUID, err)
		}
		return pid, nil
	}
	if !errors.Is(err, errdefs.ErrNotFound) {
		return 0, fmt.Errorf("read pid of pod %s: %w", p.UUID, err)
	}
	b, _, err = readRegular(root, stage1abi.PPIDFile, maxSmallFile)
	if errors.Is(err, errdefs.ErrNotFound) {
		return 0, errdefs.NotFound("pod %s has not recorded its pid yet", p.UUID)
	}
	if err != nil {
		return 0, fmt.Errorf("read ppid of pod %s: %w", p.UUID, err)
	}
	ppid, err := parseDecimal(b, 1)
	if err != nil {
		return 0, fmt.Errorf("read ppid of pod %s: %w", p.UUID, err)
	}
	pid, err := onlyChild(ppid)
	if err != nil {
		return 0, fmt.Errorf("find pid of pod %s: %w", p.UUID, err)
	}
	return pid, nil
}

// onlyChild returns the only child of process ppid.
func onlyChild(ppid int) (int, error) {
	kids, err := proctree.Children(ppid)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errdefs.NotFound("process %d is gone", ppid)
	}
	if err != nil {
		return 0, err
	}
	switch len(kids) {
	case 0:
		return 0, errdefs.NotFound("process %d has no child yet", ppid)
	case 1:
		return kids[0], nil
	}
	// Not yet: systemd-nspawn's outer child clones the pod's init as
	// its parent's child and then exits, so for a moment the parent has
	// two. WaitPID waits on ErrNotFound.
	return 0, errdefs.NotFound("process %d has %d children, not yet the pod's one", ppid, len(kids))
}

// WaitPID waits until the pod records its pid, and returns it (see PID).
// It fails with errdefs.ErrFailedPrecondition if the pod stops being
// alive (embryo, preparing, prepared or running) before it does, and when
// ctx is done.
func (p *Pod) WaitPID(ctx context.Context) (int, error) {
	for {
		pid, err := p.PID(ctx)
		if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
			return pid, err
		}
		if err := p.Refresh(ctx); err != nil {
			return 0, fmt.Errorf("wait for pid of pod %s: %w", p.UUID, err)
		}
		switch p.State {
		case Embryo, Preparing, Prepared, Running:
		default:
			// It may have written the pid just before exiting.
			if pid, err := p.PID(ctx); err == nil {
				return pid, nil
			}
			return 0, errdefs.FailedPrecondition("wait for pid of pod %s: pod is %s and recorded no pid", p.UUID, p.State)
		}
		t := time.NewTimer(pidPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("wait for pid of pod %s: %w", p.UUID, ctx.Err())
		case <-t.C:
		}
	}
}

// readAppStatus reads the exit status stage1 recorded for app: through
// the stage1's root filesystem while it is mounted, else from the
// overlay's upper directory in the pod directory, where the file stays
// once the mounts are gone (after a reboot, or an unmount by gc).
func readAppStatus(root *os.Root, app string) ([]byte, fs.FileInfo, error) {
	b, fi, err := readRegular(root, stage1abi.AppStatusFile(app), maxSmallFile)
	if !errors.Is(err, errdefs.ErrNotFound) {
		return b, fi, err
	}
	rel, relErr := filepath.Rel(stage1abi.Stage1RootfsRel, stage1abi.AppStatusFile(app))
	if relErr != nil {
		return b, fi, err
	}
	upper, _ := mountplan.Stage1OverlayDirs("")
	return readRegular(root, filepath.Join(upper, rel), maxSmallFile)
}

// AppExitStatuses returns the exit status stage1 recorded for each app of
// the pod manifest (stage1abi.AppStatusFile), by app name. Apps without a
// status (not exited yet) are absent.
func (p *Pod) AppExitStatuses(ctx context.Context) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := p.openRoot()
	if err != nil {
		return nil, err
	}
	defer func() { _ = root.Close() }()
	pm, err := readManifest(root, p.UUID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(pm.Apps))
	for _, a := range pm.Apps {
		name := a.Name.String()
		b, _, err := readAppStatus(root, name)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read exit status of app %s of pod %s: %w", name, p.UUID, err)
		}
		st, err := parseDecimal(b, 0)
		if err != nil {
			return nil, fmt.Errorf("read exit status of app %s of pod %s: %w", name, p.UUID, err)
		}
		out[name] = st
	}
	return out, nil
}

// Created returns when NewPod created the pod (stage1abi.CreatedFile).
func (p *Pod) Created(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	root, err := p.openRoot()
	if err != nil {
		return time.Time{}, err
	}
	defer func() { _ = root.Close() }()
	b, _, err := readRegular(root, stage1abi.CreatedFile, maxSmallFile)
	if err != nil {
		return time.Time{}, fmt.Errorf("read creation time of pod %s: %w", p.UUID, err)
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("read creation time of pod %s: %w", p.UUID, err))
	}
	return t, nil
}

// Started returns when stage1 recorded the pod's pid: the modification
// time of its pid (or ppid) file. Before that it fails with
// errdefs.ErrNotFound.
func (p *Pod) Started(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	root, err := p.openRoot()
	if err != nil {
		return time.Time{}, err
	}
	defer func() { _ = root.Close() }()
	for _, name := range []string{stage1abi.PIDFile, stage1abi.PPIDFile} {
		fi, err := root.Lstat(name)
		if err == nil {
			return fi.ModTime(), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return time.Time{}, fmt.Errorf("read start time of pod %s: %w", p.UUID, err)
		}
	}
	return time.Time{}, errdefs.NotFound("pod %s has not started", p.UUID)
}

// Ready returns when stage1 recorded the pod as ready: the modification
// time of stage1abi.ReadyFile. Before that, and for a pod whose stage1
// never writes it (an interface version below
// stage1abi.InterfaceVersionReady), it fails with errdefs.ErrNotFound.
// The file stays after the pod exits: whether the pod still runs is
// State's answer.
func (p *Pod) Ready(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	root, err := p.openRoot()
	if err != nil {
		return time.Time{}, err
	}
	defer func() { _ = root.Close() }()
	return readyTime(root, p.UUID)
}

func readyTime(root *os.Root, uuid string) (time.Time, error) {
	fi, err := root.Lstat(stage1abi.ReadyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, errdefs.NotFound("pod %s has not recorded that it is ready", uuid)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read ready time of pod %s: %w", uuid, err)
	}
	if !fi.Mode().IsRegular() {
		return time.Time{}, errdefs.InvalidArgument("read ready time of pod %s: %s is not a regular file", uuid, stage1abi.ReadyFile)
	}
	return fi.ModTime(), nil
}

// Finished returns when the pod finished: the modification time of
// stage1's stage1abi.ExitedMarker, or else of the newest app status file,
// or else, for a pod marked for garbage collection, the time it was
// marked. A running pod, or one that never ran, fails with
// errdefs.ErrNotFound. It uses the State snapshot: call Refresh first for
// a fresh answer.
func (p *Pod) Finished(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	if p.State == Running {
		return time.Time{}, errdefs.NotFound("pod %s is running", p.UUID)
	}
	root, err := p.openRoot()
	if err != nil {
		return time.Time{}, err
	}
	defer func() { _ = root.Close() }()
	if fi, err := root.Lstat(stage1abi.ExitedMarker); err == nil {
		return fi.ModTime(), nil
	}
	var newest time.Time
	if pm, err := readManifest(root, p.UUID); err == nil {
		for _, a := range pm.Apps {
			if _, fi, err := readAppStatus(root, a.Name.String()); err == nil && fi.ModTime().After(newest) {
				newest = fi.ModTime()
			}
		}
	}
	if !newest.IsZero() {
		return newest, nil
	}
	if p.dir == dirExitedGarbage || p.dir == dirGarbage {
		return p.GCMarked(ctx)
	}
	return time.Time{}, errdefs.NotFound("pod %s has not finished", p.UUID)
}

// GCMarked returns when the pod was moved to exited-garbage/ or garbage/:
// the modification time of its directory, set by the move. Pods in other
// states fail with errdefs.ErrFailedPrecondition.
func (p *Pod) GCMarked(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	for range maxRelocations {
		if p.dir != dirExitedGarbage && p.dir != dirGarbage {
			return time.Time{}, &stateError{op: "read gc mark of", uuid: p.UUID, state: p.State}
		}
		fi, err := os.Lstat(p.Path) //nolint:gosec // G703: a path in the pod directory
		if err == nil {
			return fi.ModTime(), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return time.Time{}, fmt.Errorf("read gc mark of pod %s: %w", p.UUID, err)
		}
		if err := p.Refresh(ctx); err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, errdefs.Unavailable("read gc mark of pod %s: it kept moving", p.UUID)
}
