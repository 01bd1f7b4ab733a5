package entrypoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/entry"
	"github.com/nosecone/nscn/internal/stage1/sdmanager"
	"github.com/nosecone/nscn/stage1-kvm/guest"
)

// ImageConfig is the file of the stage1 image that names the host
// programs the flavor runs and the guest's kernel: scripts/
// build-stage1-kvm.sh writes it from its QEMU and VIRTIOFSD variables.
// qemu and virtiofsd are the host's (Debian's qemu-system-x86), not the
// image's: with their libraries and firmware they would add some 100 MB
// to every pod's stage1.
const ImageConfig = "/nscn/kvm/config.json"

// image is ImageConfig, with the kernel and initramfs as host paths in
// the image's tree.
type image struct {
	QEMU      string `json:"qemu"`
	Virtiofsd string `json:"virtiofsd"`
	Kernel    string `json:"kernel"` // in the image
	Initrd    string `json:"initrd"` // in the image
}

// imageRoot is the host path of the rootfs of the stage1 image this
// entrypoint was executed from (/nscn/NAME in the store's tree, which no
// pod can write).
func imageRoot() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the stage1 image: %w", err)
	}
	return filepath.Dir(filepath.Dir(exe)), nil
}

func loadImage() (image, error) {
	root, err := imageRoot()
	if err != nil {
		return image{}, err
	}
	b, err := os.ReadFile(filepath.Join(root, ImageConfig)) //nolint:gosec // G304: the stage1 image's own file
	if err != nil {
		return image{}, fmt.Errorf("read the stage1-kvm configuration: %w", err)
	}
	var img image
	if err := json.Unmarshal(b, &img); err != nil {
		return image{}, fmt.Errorf("%s: %w", ImageConfig, err)
	}
	img.Kernel = filepath.Join(root, img.Kernel)
	img.Initrd = filepath.Join(root, img.Initrd)
	for _, p := range []struct{ what, path, pkg string }{
		{"qemu", img.QEMU, " (Debian package qemu-system-x86)"},
		{"virtiofsd", img.Virtiofsd, " (Debian package qemu-system-common, or virtiofsd)"},
		{"the guest kernel", img.Kernel, ""},
		{"the guest initramfs", img.Initrd, ""},
	} {
		if _, err := os.Stat(p.path); err != nil {
			return image{}, errdefs.With(errdefs.ErrNotFound, fmt.Errorf("stage1-kvm needs %s at %s%s: %w", p.what, p.path, p.pkg, err))
		}
	}
	return img, nil
}

// writeNewFile creates p, which must not exist, without following a
// symlink.
func writeNewFile(p string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode) //nolint:gosec // G304: a pod path run computed
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// readInt reads a file holding one decimal number.
func readInt(p string) (int, error) {
	b, err := os.ReadFile(p) //nolint:gosec // G304: a file of the pod directory
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", p, b)
	}
	return n, nil
}

// dialControl connects to the agent's control port. It fails when no
// qemu serves the port (the pod has ended).
func dialControl(podDir string, timeout time.Duration) (net.Conn, error) {
	// Relative to the pod directory: a unix socket path has 108 bytes.
	d, err := os.Open(filepath.Join(podDir, StateDir)) //nolint:gosec // G304: the pod directory's own state directory
	if err != nil {
		return nil, err
	}
	defer func() { _ = d.Close() }()
	addr := fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), filepath.Base(ControlSocket))
	return net.DialTimeout("unix", addr, timeout)
}

// haltWait bounds how long a halt request waits for the guest's agent to
// come up: a guest's boot takes seconds under TCG, and more on a loaded
// host.
const haltWait = 90 * time.Second

// sendHalt asks the agent to halt the pod, once the agent can take the
// request. The agent starts after the apps, and until it has opened its
// ports a request written by a host that hangs up at once is lost
// (guest.OpenPort): a stop right after an app's first output left the
// pod running. So sendHalt waits for the guest's readiness, which comes
// after the agent's READY=1 (nscn-ready.socket), at most haltWait and
// only while alive says the guest runs; a pod whose apps have all ended
// (GuestEndedFile) is ending already and needs no request.
func sendHalt(podDir string, alive func() bool) error {
	deadline := time.Now().Add(haltWait)
	for {
		if _, err := os.Lstat(inStage1(podDir, GuestReadyFile)); err == nil {
			break
		}
		if _, err := os.Lstat(inStage1(podDir, GuestEndedFile)); err == nil {
			return nil
		}
		if !alive() {
			return errdefs.NotFound("the guest ended before its agent came up")
		}
		if time.Now().After(deadline) {
			return errdefs.Unavailable("the guest's agent did not come up within %s", haltWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := dialControl(podDir, 2*time.Second)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	return guest.WriteFrame(c, guest.FrameHalt, nil)
}

// controlTimeout bounds a control request: a unit's stop takes at most
// sdmanager.Timeout in the guest; a connection waits while another host
// program (a halt, another request) holds the port.
const controlTimeout = sdmanager.Timeout + 15*time.Second

// control sends req to the agent and returns its reply; a reply that
// reports a failure is an error (FailedPrecondition) as well.
func control(ctx context.Context, podDir string, req guest.ControlRequest) (guest.ControlReply, error) {
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return guest.ControlReply{}, err
	}
	req.Nonce = hex.EncodeToString(nonce[:])
	data, err := json.Marshal(req)
	if err != nil {
		return guest.ControlReply{}, err
	}
	c, err := dialControl(podDir, controlTimeout)
	if err != nil {
		return guest.ControlReply{}, fmt.Errorf("connect to the guest's agent: %w", err)
	}
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(controlTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	if err := guest.WriteFrame(c, guest.FrameControl, data); err != nil {
		return guest.ControlReply{}, fmt.Errorf("send %s %s to the guest's agent: %w", req.Op, req.Unit, err)
	}
	for {
		typ, p, err := guest.ReadFrame(c)
		if err != nil {
			return guest.ControlReply{}, fmt.Errorf("%s %s in the guest: read the agent's reply: %w", req.Op, req.Unit, err)
		}
		if typ != guest.FrameControlReply {
			continue
		}
		var r guest.ControlReply
		if json.Unmarshal(p, &r) != nil || r.Nonce != req.Nonce {
			continue // an earlier request's, which nobody read
		}
		if r.Err != "" {
			return r, errdefs.FailedPrecondition("%s %s in the guest: %s", req.Op, strings.Join(append([]string{req.Unit}, req.Dirs...), " "), r.Err)
		}
		return r, nil
	}
}

// Flavor is this flavor's name in its logs and error lines.
const Flavor entry.Flavor = "kvm"

// NewLogger returns the stage1 logger (entry.Flavor.Logger).
func NewLogger(w io.Writer, debug bool) *slog.Logger { return Flavor.Logger(w, debug) }

// ErrorLine formats err as the single stderr line of a failed entrypoint.
func ErrorLine(err error) string { return Flavor.ErrorLine(err) }

// DebugFromEnv reports whether stage0 asked for debug output through the
// environment.
func DebugFromEnv() bool { return entry.DebugFromEnv() }

// readyOnEnd reports whether a pod that has ended (GuestEndedFile) was
// ready: its readiness came (GuestReadyFile), or every app's unit had
// started (GuestStartedFile) when the pod ended before the agent was
// up. A pod whose app never started has neither.
func readyOnEnd(podDir string) bool {
	for _, f := range []string{GuestReadyFile, GuestStartedFile} {
		if _, err := os.Lstat(inStage1(podDir, f)); err == nil {
			return true
		}
	}
	return false
}
