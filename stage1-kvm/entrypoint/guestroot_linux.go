package entrypoint

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// guestRoot is the pod's stage1 rootfs as the app entrypoints change it
// while the guest runs. The guest's root processes can write it through
// virtio-fs (a symlink where a directory was, say), so every path is
// resolved in it (os.Root: a symlink may not lead out), never on the host.
type guestRoot struct {
	r   *os.Root
	dir string // its host path
}

func openGuestRoot(podDir string) (*guestRoot, error) {
	r, err := os.OpenRoot(inStage1(podDir, "/"))
	if err != nil {
		return nil, fmt.Errorf("open the stage1 rootfs: %w", err)
	}
	return &guestRoot{r: r, dir: inStage1(podDir, "/")}, nil
}

func (g *guestRoot) Close() error { return g.r.Close() }

// rel turns a pod path (/etc/…) or a path relative to the pod directory
// in the stage1 rootfs (stage1/rootfs/…) into a path relative to the
// root.
func rel(p string) string {
	p = strings.TrimPrefix(p, stage1abi.Stage1RootfsRel+"/")
	p = strings.TrimLeft(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// writeNew creates the file p, which must not exist.
func (g *guestRoot) writeNew(p string, data []byte, mode os.FileMode) error {
	f, err := g.r.OpenFile(rel(p), os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// replace writes p atomically: a new file beside it, renamed over it.
func (g *guestRoot) replace(p string, data []byte, mode os.FileMode) (err error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	tmp := path.Join(path.Dir(rel(p)), "."+path.Base(p)+".tmp-"+hex.EncodeToString(b[:]))
	if err := g.writeNew(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer func() {
		if err != nil {
			_ = g.r.Remove(tmp)
		}
	}()
	if err := g.r.Rename(tmp, rel(p)); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// remove removes p, and all below it; a missing p is no error.
func (g *guestRoot) remove(p string) error {
	if err := g.r.RemoveAll(rel(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// loadPod reads the helpers' pod config.
func (g *guestRoot) loadPod() (*sdpod.Pod, error) {
	data, err := g.r.ReadFile(rel(sdpod.PodConfigFile))
	if err != nil {
		return nil, fmt.Errorf("read pod config: %w", err)
	}
	var pod sdpod.Pod
	if err := json.Unmarshal(data, &pod); err != nil {
		return nil, errdefs.Newf(errdefs.ErrInvalidArgument, "parse pod config: %w", err)
	}
	return &pod, nil
}

// mkfifos makes FIFOs at ps, and their missing parents.
func (g *guestRoot) mkfifos(ps ...string) error {
	for _, p := range ps {
		if err := g.r.MkdirAll(path.Dir(rel(p)), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", path.Dir(p), err)
		}
		root, err := inroot.OpenRoot(g.dir)
		if err != nil {
			return err
		}
		dir, err := inroot.Open(root, path.Dir(rel(p)), unix.O_PATH|unix.O_DIRECTORY)
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
