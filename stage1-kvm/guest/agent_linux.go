package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/podattach"
	"github.com/nosecone/nscn/internal/stage1/sdmanager"
)

// sigHalt is SIGRTMIN+3, systemd's halt.target signal.
const sigHalt = unix.Signal(37)

// Agent serves the control port (frames: see FrameControl) for as long as
// the guest runs, one request at a time. log gets one line per halt and
// per failed request.
//
// A read of a virtio-serial port returns end of file whenever no host
// program is connected to it (qemu's socket chardev between two
// requests), and poll reports a hang-up then, so the agent reads again
// after a pause instead. A frame cut short by a disconnection is dropped.
func Agent(log io.Writer, f *os.File) error {
	defer func() { _ = f.Close() }()
	for {
		typ, p, err := ReadFrame(f)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		switch typ {
		case FrameHalt:
			_, _ = fmt.Fprintln(log, "nscn-agent: halt requested")
			if err := unix.Kill(1, sigHalt); err != nil {
				_, _ = fmt.Fprintln(log, "nscn-agent: signal systemd:", err)
			}
		case FrameControl:
			r := serveControl(p)
			if r.Err != "" {
				_, _ = fmt.Fprintln(log, "nscn-agent:", r.Err)
			}
			data, err := json.Marshal(r)
			if err == nil {
				err = WriteFrame(f, FrameControlReply, data)
			}
			if err != nil {
				_, _ = fmt.Fprintln(log, "nscn-agent: reply:", err)
			}
		default:
			_, _ = fmt.Fprintf(log, "nscn-agent: unknown frame %q\n", typ)
		}
	}
}

// OpenPort opens the named virtio-serial port (ControlPort, EnterPort)
// for Agent and EnterServer. Until the agent has its ports open, qemu
// holds what a host writes to them, but a host that writes and hangs up
// at once (stop's halt request) may lose its request: hence the agent
// tells systemd it is ready (READY=1) only once both are open, and the
// pod's readiness waits for that.
func OpenPort(name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(PortDir, name), os.O_RDWR, 0) //nolint:gosec // G304: one of the guest's own port names
}

// serveControl carries out one FrameControl request.
func serveControl(p []byte) ControlReply {
	req, err := ParseControlRequest(p)
	if err != nil {
		return ControlReply{Nonce: req.Nonce, Err: err.Error()}
	}
	r := ControlReply{Nonce: req.Nonce}
	switch req.Op {
	case OpBindEntries:
		err = bindEntries(req.Dirs[0])
	case OpUnmount:
		err = unmountUnder(req.Dirs)
	default:
		sr := sdmanager.Do(context.Background(), sdmanager.Request{Op: req.Op, Unit: req.Unit})
		r.State, r.Err = sr.State, sr.Err
	}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

// bindEntries binds each entry of dir onto itself.
func bindEntries(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", p, err)
		}
	}
	return nil
}

// unmountUnder unmounts, lazily, every mount at and below dirs.
func unmountUnder(dirs []string) error {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range podattach.Under(string(mi), dirs) {
		if err := unix.Unmount(t, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, &os.PathError{Op: "umount", Path: t, Err: err})
		}
	}
	return errors.Join(errs...)
}
