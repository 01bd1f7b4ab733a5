package hostpid

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/appc/spec/schema/types"
)

// Kind is a frame's first byte.
type Kind byte

// The frames' kinds.
const (
	// KindRequest (helper → spawner): start the app named by the
	// payload; the packet carries the app's stdin, stdout and stderr
	// (SCM_RIGHTS).
	KindRequest Kind = 'R'
	// KindSignal (helper → spawner): one byte, a signal for the app.
	KindSignal Kind = 'S'
	// KindStarted (spawner → helper): the app's pid in the host's PID
	// namespace, four bytes, big-endian.
	KindStarted Kind = 'P'
	// KindError (spawner → helper): the request is refused or the app
	// could not start; the payload is the message.
	KindError Kind = 'E'
	// KindExit (spawner → helper): the app has ended: its exit code and
	// the signal that killed it (0: none), one byte each.
	KindExit Kind = 'X'
)

// MaxFrame is the largest frame either end sends or reads; a longer
// packet is cut short by the receiver's buffer and refused.
const MaxFrame = 1024

// sigMax is the highest signal number Linux has (SIGRTMAX).
const sigMax = 64

// Frame is one message. Only the fields of its Kind are set.
type Frame struct {
	Kind   Kind
	App    string // KindRequest: the app's name (an appc AC name)
	Signal int    // KindSignal, KindExit: 1…64; KindExit: 0 for an exit
	PID    int    // KindStarted
	Code   int    // KindExit: 0…255
	Msg    string // KindError: one line of UTF-8
}

// ErrFrame is the class of every frame Parse refuses.
var ErrFrame = errors.New("malformed frame")

// Encode returns f as one packet. It refuses what Parse would.
func Encode(f Frame) ([]byte, error) {
	var b []byte
	// Out of range values do not survive the byte: Parse, below,
	// refuses what they become, or Encode refuses them here.
	if f.Signal < 0 || f.Signal > sigMax || f.Code < 0 || f.Code > 255 {
		return nil, fmt.Errorf("encode frame: %w: signal %d, code %d", ErrFrame, f.Signal, f.Code)
	}
	switch f.Kind {
	case KindRequest:
		b = append([]byte{byte(f.Kind)}, f.App...)
	case KindSignal:
		b = []byte{byte(f.Kind), byte(f.Signal)}
	case KindStarted:
		b = binary.BigEndian.AppendUint32([]byte{byte(f.Kind)}, uint32(f.PID)) //nolint:gosec // G115: checked by Parse below
	case KindError:
		msg := f.Msg
		if len(msg) > MaxFrame-1 {
			msg = msg[:MaxFrame-1]
			for !utf8.ValidString(msg) {
				msg = msg[:len(msg)-1]
			}
		}
		b = append([]byte{byte(f.Kind)}, msg...)
	case KindExit:
		b = []byte{byte(f.Kind), byte(f.Code), byte(f.Signal)}
	default:
		return nil, fmt.Errorf("encode frame: %w: unknown kind %q", ErrFrame, f.Kind)
	}
	if _, err := Parse(b); err != nil {
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	return b, nil
}

// Parse reads one packet. Every field is checked: an app name must be
// an AC name, a signal 1…64, a pid positive, a message one valid UTF-8
// line; a frame of the wrong length or an unknown kind is refused.
func Parse(b []byte) (Frame, error) {
	if len(b) == 0 {
		return Frame{}, fmt.Errorf("%w: empty", ErrFrame)
	}
	if len(b) > MaxFrame {
		return Frame{}, fmt.Errorf("%w: %d bytes, more than %d", ErrFrame, len(b), MaxFrame)
	}
	f := Frame{Kind: Kind(b[0])}
	p := b[1:]
	switch f.Kind {
	case KindRequest:
		n, err := types.NewACName(string(p))
		if err != nil || n.String() != string(p) {
			return Frame{}, fmt.Errorf("%w: request: %q is not an app name", ErrFrame, p)
		}
		f.App = string(p)
	case KindSignal:
		if len(p) != 1 || p[0] == 0 || p[0] > sigMax {
			return Frame{}, fmt.Errorf("%w: signal: want one byte 1…%d, got %v", ErrFrame, sigMax, p)
		}
		f.Signal = int(p[0])
	case KindStarted:
		if len(p) != 4 {
			return Frame{}, fmt.Errorf("%w: started: want 4 bytes, got %d", ErrFrame, len(p))
		}
		pid := binary.BigEndian.Uint32(p)
		if pid == 0 || pid > 1<<22 {
			return Frame{}, fmt.Errorf("%w: started: pid %d", ErrFrame, pid)
		}
		f.PID = int(pid)
	case KindError:
		if len(p) == 0 || !utf8.Valid(p) {
			return Frame{}, fmt.Errorf("%w: error: not a UTF-8 message", ErrFrame)
		}
		f.Msg = string(p)
	case KindExit:
		if len(p) != 2 || p[1] > sigMax || (p[1] != 0 && p[0] != 0) {
			return Frame{}, fmt.Errorf("%w: exit: want a code and a signal, got %v", ErrFrame, p)
		}
		f.Code, f.Signal = int(p[0]), int(p[1])
	default:
		return Frame{}, fmt.Errorf("%w: unknown kind %q", ErrFrame, b[0])
	}
	return f, nil
}
