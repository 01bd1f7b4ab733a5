package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/stage1/apphelper"
	"github.com/nosecone/nscn/internal/stage1/sdmanager"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// readyWatch records the pod as ready (stage1abi.ReadyFile) when the
// pod's systemd says so. The message travels:
//
//	systemd (pod's pid 1) ──READY=1──▶ systemd-nspawn ──READY=1──▶ run
//	       /run/host/notify in the pod      NOTIFY_SOCKET=sdpod.NotifySocket(uuid)
//
// systemd-nspawn passes READY=1 on only with --notify-ready=yes
// (nspawn.Argv). run listens before it starts systemd-nspawn, so that no
// message is lost, and reads once it knows systemd-nspawn's pid: an
// abstract socket can be reached by any process of the host's network
// namespace, so only messages whose sender the kernel reports
// (SO_PASSCRED) as systemd-nspawn count.
//
// When nscn run itself runs under a service manager that asked for
// notifications (a systemd unit of Type=notify: NOTIFY_SOCKET in run's
// environment; run is the unit's main process, as stage0 execs it), run
// passes READY=1 on to it too, once the ready file is written.
type readyWatch struct {
	conn *net.UnixConn
	addr string
	// forward is the NOTIFY_SOCKET of run's own environment; empty for
	// none.
	forward string
	// gate, when not nil, is called after the first READY=1 and before
	// the ready file is written; false: the pod never becomes ready (its
	// network failed, and the pod is being stopped).
	gate func() bool
	// afterReady, when not nil, runs in a goroutine of its own once the
	// pod is ready and its callers have been told: work the pod's start
	// need not wait for.
	afterReady func()
	// tl marks the pod's readiness (nil: off).
	tl   *timeline.Timeline
	done chan struct{} // closed when the reader has returned; nil before watch
}

// listenReady binds the pod's notify socket. forward is where to pass
// READY=1 on, or empty.
func listenReady(uuid, forward string) (*readyWatch, error) {
	addr := sdpod.NotifySocket(uuid)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("listen for the pod's readiness: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("listen for the pod's readiness: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		serr = err
	}
	if serr != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("listen for the pod's readiness: %w", os.NewSyscallError("setsockopt SO_PASSCRED", serr))
	}
	return &readyWatch{conn: conn, addr: addr, forward: forward}, nil
}

// Env is the NOTIFY_SOCKET entry of systemd-nspawn's environment.
func (w *readyWatch) Env() string { return "NOTIFY_SOCKET=" + w.addr }

// watch reads the notifications of process pid (systemd-nspawn) until
// Close, and writes the ready file in podDir on the first READY=1, once
// the gate, if any, lets it (a sandbox's network, set up while the pod
// boots). It goes on reading after that, so that systemd-nspawn never
// blocks on a full socket.
func (w *readyWatch) watch(ctx context.Context, log *slog.Logger, podDir string, pid int) {
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		buf := make([]byte, 4096)
		oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
		ready := false
		for {
			n, oobn, _, _, err := w.conn.ReadMsgUnix(buf, oob)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				log.WarnContext(ctx, "read the pod's notifications", "err", err)
				return
			}
			if sender := notifySender(oob[:oobn]); sender != pid {
				log.DebugContext(ctx, "ignore a notification from another process", "sender", sender)
				continue
			}
			if ready || !sdpod.NotifyReady(buf[:n]) {
				continue
			}
			ready = true
			if w.gate != nil && !w.gate() {
				continue
			}
			stamp := time.Now().UTC().Format(time.RFC3339Nano) + "\n"
			if err := atomicfile.Write(podDir, stage1abi.ReadyFile, []byte(stamp)); err != nil {
				log.WarnContext(ctx, "record that the pod is ready", "err", err)
				continue
			}
			w.tl.Mark("pod-ready")
			log.DebugContext(ctx, "the pod is ready")
			if w.forward != "" {
				if err := sdNotify(w.forward, "READY=1"); err != nil {
					log.WarnContext(ctx, "tell the service manager that the pod is ready", "err", err)
				}
			}
			if w.afterReady != nil {
				go w.afterReady()
			}
		}
	}()
}

// sdNotify sends msg to the sd_notify socket addr (sd_notify(3)): a path,
// or an abstract name after "@".
func sdNotify(addr, msg string) error {
	c, err := apphelper.DialNotify(addr)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("notify %s: %w", addr, err)
	}
	return nil
}

// notifySender is the pid the kernel reports as a message's sender, or 0.
func notifySender(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
}

// Close stops listening and waits for the reader.
func (w *readyWatch) Close() {
	_ = w.conn.Close()
	if w.done != nil {
		<-w.done
	}
}

// startJournald starts the journald of the mutable pod at podDir once
// the pod is ready. Such a pod is ready without it (package units: its
// default.target wants journald's sockets alone), and its first app's unit
// wants it; started by that unit, journald's exec and the opening of its
// journal ran beside the first app's start, on the same cores, and a CRI
// StartContainer (bench figure 10: one container per sandbox) waited the
// longer. Started here, it runs while the caller creates that container.
// The app's unit does not wait for it (it is ordered after journald's
// sockets only): a start still under way when the app starts merges with
// the app's. A failure is of no consequence (the first app's unit starts
// journald then, as before) and only logged.
//
// The child that speaks to the pod's systemd runs in the pod's PID
// namespace, where the pod's processes see it: it must not hold the pod
// lock's descriptor (RKT_LOCK_FD, lockFD), a directory of the host that
// stage0 made inheritable for run and systemd-nspawn. systemd-nspawn has
// it by now, and run keeps its own; nothing run starts later needs it.
func startJournald(ctx context.Context, log *slog.Logger, podDir, lockFD string) {
	if fd, err := strconv.Atoi(lockFD); err == nil && fd > 2 {
		unix.CloseOnExec(fd)
	}
	pid, err := podPID(podDir)
	if err == nil {
		_, err = dialPodSystemd(pid).run(ctx, sdmanager.OpStart, units.JournaldService)
	}
	if err != nil {
		log.DebugContext(ctx, "start the pod's journald after its start", "err", err)
	}
}
