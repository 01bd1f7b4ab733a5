package hostpid

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
)

// NumStdio is the number of descriptors a request carries: the app's
// stdin, stdout and stderr.
const NumStdio = 3

// Send writes f as one packet on c.
func Send(c *net.UnixConn, f Frame) error {
	b, err := Encode(f)
	if err != nil {
		return err
	}
	if _, err := c.Write(b); err != nil {
		return fmt.Errorf("send %c frame: %w", f.Kind, err)
	}
	return nil
}

// Receive reads one packet from c. A packet that carries descriptors
// (only a request may) has them closed and is refused.
func Receive(c *net.UnixConn) (Frame, error) {
	f, files, err := receive(c)
	closeAll(files)
	if err != nil {
		return Frame{}, err
	}
	if len(files) > 0 {
		return Frame{}, fmt.Errorf("%w: %c frame with descriptors", ErrFrame, f.Kind)
	}
	return f, nil
}

// ReceiveRequest reads the request that opens a connection: a
// KindRequest frame with exactly NumStdio descriptors, which it returns
// (close-on-exec; the caller owns them). Anything else is refused, its
// descriptors closed.
func ReceiveRequest(c *net.UnixConn) (Frame, []*os.File, error) {
	f, files, err := receive(c)
	if err == nil && f.Kind != KindRequest {
		err = fmt.Errorf("%w: want a request, got a %c frame", ErrFrame, f.Kind)
	}
	if err == nil && len(files) != NumStdio {
		err = fmt.Errorf("%w: a request with %d descriptors, not %d", ErrFrame, len(files), NumStdio)
	}
	if err != nil {
		closeAll(files)
		return Frame{}, nil, err
	}
	return f, files, nil
}

// receive reads one packet and the descriptors it carries. The Go
// runtime receives them close-on-exec (MSG_CMSG_CLOEXEC).
func receive(c *net.UnixConn) (Frame, []*os.File, error) {
	buf := make([]byte, MaxFrame+1)
	// Room for one more descriptor than a request has, to tell a packet
	// with too many from one cut short.
	oob := make([]byte, unix.CmsgSpace(4*(NumStdio+1)))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return Frame{}, nil, fmt.Errorf("receive frame: %w", err)
	}
	files, ferr := parseRights(oob[:oobn])
	switch {
	case ferr != nil:
		err = ferr
	case flags&unix.MSG_CTRUNC != 0:
		err = fmt.Errorf("%w: too many descriptors", ErrFrame)
	case flags&unix.MSG_TRUNC != 0 || n > MaxFrame:
		err = fmt.Errorf("%w: more than %d bytes", ErrFrame, MaxFrame)
	case n == 0:
		err = fmt.Errorf("receive frame: %w", errdefs.Unavailable("the peer closed the connection"))
	}
	if err != nil {
		closeAll(files)
		return Frame{}, nil, err
	}
	f, err := Parse(buf[:n])
	if err != nil {
		closeAll(files)
		return Frame{}, nil, err
	}
	return f, files, nil
}

// parseRights returns the descriptors of the SCM_RIGHTS messages of oob;
// any other control message is an error (its descriptors, if any, are
// closed with the rest).
func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %w", ErrFrame, err)
	}
	var files []*os.File
	var bad error
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			bad = fmt.Errorf("%w: a control message that is not SCM_RIGHTS", ErrFrame)
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "received descriptor"))
		}
	}
	return files, bad
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// Client is the app helper's end of a connection.
type Client struct {
	c *net.UnixConn
}

// Dial connects to the spawner's socket at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("connect to the host PID spawner: %w", err))
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("connect to the host PID spawner: %T is not a unix connection", c)
	}
	return &Client{c: uc}, nil
}

// Start asks the spawner to start app with the descriptors stdio as
// its stdin, stdout and stderr, and returns its pid in the host's PID
// namespace once it has exec'd.
func (cl *Client) Start(app string, stdio [NumStdio]uintptr) (int, error) {
	b, err := Encode(Frame{Kind: KindRequest, App: app})
	if err != nil {
		return 0, err
	}
	rights := unix.UnixRights(int(stdio[0]), int(stdio[1]), int(stdio[2]))
	if _, _, err := cl.c.WriteMsgUnix(b, rights, nil); err != nil {
		return 0, fmt.Errorf("send request: %w", err)
	}
	f, err := Receive(cl.c)
	if err != nil {
		return 0, err
	}
	switch f.Kind {
	case KindStarted:
		return f.PID, nil
	case KindError:
		return 0, errors.New(f.Msg)
	}
	return 0, fmt.Errorf("%w: want started or error, got a %c frame", ErrFrame, f.Kind)
}

// Signal asks the spawner to send sig to the app.
func (cl *Client) Signal(sig int) error {
	return Send(cl.c, Frame{Kind: KindSignal, Signal: sig})
}

// Wait returns the app's end, a KindExit frame.
func (cl *Client) Wait() (Frame, error) {
	f, err := Receive(cl.c)
	if err != nil {
		return Frame{}, err
	}
	if f.Kind != KindExit {
		return Frame{}, fmt.Errorf("%w: want exit, got a %c frame", ErrFrame, f.Kind)
	}
	return f, nil
}

// Close closes the connection: the spawner kills the app if it runs.
func (cl *Client) Close() error { return cl.c.Close() }
