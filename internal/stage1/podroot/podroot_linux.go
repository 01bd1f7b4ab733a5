package podroot

import (
	"crypto/rand"
	"encoding/hex"
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

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Root is a pod's stage1 rootfs, opened for the app entrypoints.
type Root struct {
	r   *os.Root
	dir string // its host path
}

// Open opens the stage1 rootfs of the pod directory podDir.
func Open(podDir string) (*Root, error) {
	dir := filepath.Join(podDir, stage1abi.Stage1RootfsRel)
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open the stage1 rootfs: %w", err)
	}
	return &Root{r: r, dir: dir}, nil
}

// Close closes the root.
func (g *Root) Close() error { return g.r.Close() }

// Rel turns a pod path (/etc/…) or a path relative to the pod directory
// in the stage1 rootfs (stage1/rootfs/…) into a path relative to the
// root.
func Rel(p string) string {
	p = strings.TrimPrefix(p, stage1abi.Stage1RootfsRel+"/")
	p = strings.TrimLeft(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// WriteNew creates the file p, which must not exist.
func (g *Root) WriteNew(p string, data []byte, mode os.FileMode) error {
	f, err := g.r.OpenFile(Rel(p), os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Replace writes p atomically: a new file beside it, renamed over it.
func (g *Root) Replace(p string, data []byte, mode os.FileMode) (err error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	tmp := path.Join(path.Dir(Rel(p)), "."+path.Base(p)+".tmp-"+hex.EncodeToString(b[:]))
	if err := g.WriteNew(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer func() {
		if err != nil {
			_ = g.r.Remove(tmp)
		}
	}()
	if err := g.r.Rename(tmp, Rel(p)); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// Remove removes p, and all below it; a missing p is no error.
func (g *Root) Remove(p string) error {
	if err := g.r.RemoveAll(Rel(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// MkdirAll makes the directory p and its missing parents.
func (g *Root) MkdirAll(p string, mode os.FileMode) error {
	return g.r.MkdirAll(Rel(p), mode)
}

// ReadFile reads the regular file p, of at most max bytes. Anything
// else there (a FIFO, a device node, a directory) is an error: it is
// opened with O_NONBLOCK and checked before it is read.
func (g *Root) ReadFile(p string, maxSize int64) ([]byte, error) {
	f, err := g.r.OpenFile(Rel(p), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errdefs.InvalidArgument("%s is not a regular file (%s)", p, fi.Mode().Type())
	}
	if fi.Size() > maxSize {
		return nil, errdefs.InvalidArgument("%s is larger than %d bytes", p, maxSize)
	}
	return io.ReadAll(io.LimitReader(f, maxSize+1))
}

// maxPodConfig bounds the helpers' pod config that LoadPod reads.
const maxPodConfig = 16 << 20

// LoadPod reads the helpers' pod config.
func (g *Root) LoadPod() (*sdpod.Pod, error) {
	data, err := g.ReadFile(sdpod.PodConfigFile, maxPodConfig)
	if err != nil {
		return nil, fmt.Errorf("read pod config: %w", err)
	}
	var pod sdpod.Pod
	if err := json.Unmarshal(data, &pod); err != nil {
		return nil, errdefs.Newf(errdefs.ErrInvalidArgument, "parse pod config: %w", err)
	}
	return &pod, nil
}

// Mkfifos makes FIFOs at ps, and their missing parents.
func (g *Root) Mkfifos(ps ...string) error {
	for _, p := range ps {
		if err := g.r.MkdirAll(path.Dir(Rel(p)), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", path.Dir(p), err)
		}
		root, err := inroot.OpenRoot(g.dir)
		if err != nil {
			return err
		}
		dir, err := inroot.Open(root, path.Dir(Rel(p)), unix.O_PATH|unix.O_DIRECTORY)
		_ = root.Close()
		if err != nil {
			return err
		}
		err = unix.Mkfifoat(int(dir.Fd()), path.Base(p), 0o600)
		_ = dir.Close()
		if err != nil {
			return &os.PathError{Op: "mkfifo", Path: p, Err: err}
		}
	}
	return nil
}

// Exists reports whether p is there (a symlink counts, and is not
// followed).
func (g *Root) Exists(p string) bool {
	_, err := g.r.Lstat(Rel(p))
	return err == nil
}

// ReadInt reads the regular file p, which holds a decimal number and a
// newline (a status record).
func (g *Root) ReadInt(p string) (int, error) {
	b, err := g.ReadFile(p, 64)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, errdefs.InvalidArgument("%s: %q is not a number", p, b)
	}
	return n, nil
}

// StartedApps are the apps of a mutable pod that app/start started
// (stage1abi.AppStartedFile) and that have no status yet
// (stage1abi.AppStatusFile): when the pod is killed, run records the
// kill as their status, as it does for a run-time app. A name that is
// not an app name is left out.
func (g *Root) StartedApps() []string {
	d, err := g.r.Open(Rel(path.Dir(stage1abi.AppStartedFile("x"))))
	if err != nil {
		return nil
	}
	ents, err := d.ReadDir(-1)
	_ = d.Close()
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !validAppName(name) {
			continue
		}
		if !g.Exists(stage1abi.AppStatusFile(name)) {
			out = append(out, name)
		}
	}
	return out
}

// validAppName reports whether s is an appc name (an app's name is one).
func validAppName(s string) bool {
	_, err := types.NewACName(s)
	return err == nil
}

// MarkKilled records, before a kill, that the pod was killed
// (sdpod.KilledFile) in the stage1 rootfs of the pod directory podDir.
func MarkKilled(podDir string) error {
	root, err := Open(podDir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	return root.Replace(sdpod.KilledFile, []byte("\n"), 0o644)
}

// StatusInput reads what the pod's helpers left for its status once it
// has ended: the first failure, the kill marker, and the status of each
// of apps that has one.
func (g *Root) StatusInput(apps []string) sdpod.PodStatusInput {
	in := sdpod.PodStatusInput{Apps: apps, Statuses: map[string]int{}}
	if b, err := g.ReadFile(sdpod.FirstFailureFile, sdpod.MaxFirstFailure); err == nil {
		in.FirstFailure = string(b)
	}
	in.Killed = g.Exists(sdpod.KilledFile)
	for _, a := range apps {
		if st, err := g.ReadInt(stage1abi.AppStatusFile(a)); err == nil {
			in.Statuses[a] = st
		}
	}
	return in
}

// RecordKilled records status, the killed pod's, as the status of each
// of apps that has none in statuses. It tries every app and returns what
// failed.
func (g *Root) RecordKilled(apps []string, statuses map[string]int, status int) error {
	var errs []error
	for _, a := range apps {
		if _, done := statuses[a]; done {
			continue
		}
		if err := g.Replace(path.Join(sdpod.StatusDir, a), []byte(strconv.Itoa(status)+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", a, err))
		}
	}
	return errors.Join(errs...)
}
