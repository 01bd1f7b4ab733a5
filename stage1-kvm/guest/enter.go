package guest

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/stage1/appspec"
)

// The enter port carries one enter session at a time between the host's
// enter entrypoint and the agent, as frames: a type byte, a big-endian
// uint32 length and that many bytes.
//
//	host (enter entrypoint)                 guest (agent)
//	  connect to the port's socket
//	  FrameRequest: EnterRequest (JSON) ──▶ find a process of the app,
//	                                        start the command confined
//	                                        as the app is (EnterHelper)
//	                                   ◀── FrameStarted: the request's Nonce
//	  FrameStdin…, FrameStdinEOF ─────────▶ the command's stdin
//	                                   ◀── FrameStdinAck, one per FrameStdin
//	                                        written
//	  FrameSignal (one byte) ─────────────▶ signal the command
//	                                   ◀── FrameStdout…, FrameStderr…
//	                                   ◀── FrameExit: the status as a
//	                                        decimal number, or FrameError:
//	                                        why the command could not run
//
// qemu's socket serves one host connection at a time: a second enter
// waits until the first has ended. A host that goes away mid-session
// (the agent reads end of file) ends the command. Frames the guest wrote
// for an earlier session that nobody read are skipped by the host until
// FrameStarted carries its own nonce.
const (
	FrameRequest  = 'R'
	FrameStdin    = 'I'
	FrameStdinEOF = 'D'
	FrameSignal   = 'K'
	FrameStarted  = 'A'
	FrameStdout   = 'O'
	FrameStderr   = 'E'
	FrameExit     = 'X'
	FrameError    = 'F'
	// FrameStdinAck: the agent has written one FrameStdin's data to the
	// command's stdin; the host sends at most StdinWindow unacknowledged
	// ones, so that the agent's queue never fills and a signal or the
	// host's hang-up is always read at once.
	FrameStdinAck = 'a'
)

// StdinWindow is how many FrameStdin the host may have in flight, and
// StdinQueue how many the agent queues: more than the window.
const (
	StdinWindow = 16
	StdinQueue  = 2 * StdinWindow
)

// EnterPort is the name of the enter sessions' virtio-serial port.
const EnterPort = "nscn.enter"

// MaxFrame bounds a frame's payload: a request carries a policy and an
// environment; data frames are written in chunks of MaxData.
const (
	MaxFrame = 1 << 20
	MaxData  = 4096
)

// frameHeader is the type byte and the length.
const frameHeader = 5

// EnterRequest is what the host's enter asks of the agent: run Cmd in the
// app Spec.Name as the app runs. The host computes the spec and policy
// from the pod manifest and run's isolation record, and the credentials
// from the record the app's helper wrote when the app started: the
// agent does not take the guest's copies (which the pod could rewrite).
type EnterRequest struct {
	Nonce  string          `json:"nonce"`
	Spec   appspec.AppSpec `json:"spec"`
	Policy *isolate.Policy `json:"policy"`
	Creds  isolate.Creds   `json:"creds"`
	Cmd    []string        `json:"cmd"`
	Debug  bool            `json:"debug,omitempty"`
}

// WriteFrame writes one frame in a single write, so that frames stay
// whole on a virtio-serial port.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return errdefs.InvalidArgument("frame of %d bytes exceeds %d", len(payload), MaxFrame)
	}
	b := make([]byte, frameHeader+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:frameHeader], uint32(len(payload))) //nolint:gosec // G115: bounded by MaxFrame above
	copy(b[frameHeader:], payload)
	_, err := w.Write(b)
	return err
}

// ReadFrame reads one frame. A length above MaxFrame is an error: the
// stream cannot be trusted after it.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxFrame {
		return 0, nil, errdefs.InvalidArgument("frame of type %q announces %d bytes, more than %d", h[0], n, MaxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, fmt.Errorf("frame of type %q: %w", h[0], io.ErrUnexpectedEOF)
	}
	return h[0], p, nil
}

// FrameWriter writes data frames of one type, in chunks of MaxData.
type FrameWriter struct {
	W    io.Writer
	Type byte
}

func (f FrameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), MaxData)
		if err := WriteFrame(f.W, f.Type, p[:c]); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}
