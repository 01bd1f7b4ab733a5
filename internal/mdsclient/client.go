package mdsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/nosecone/nscn/internal/errdefs"
)

const (
	// maxErrorBody bounds the error message read from the service, and
	// maxAnswer a successful answer.
	maxErrorBody = 4 << 10
	maxAnswer    = 4 << 10
	// maxResponse bounds a whole answer read from the socket: the status
	// line, the headers and the body.
	maxResponse = 64 << 10
	// dialTimeout bounds Running.
	dialTimeout = 2 * time.Second
)

// Registered is the service's answer to a registration.
type Registered struct {
	// MetadataPort is the TCP port the service serves the metadata API
	// on (its first metadata listener), which the pod's AC_METADATA_URL
	// must name; 0 if it serves none.
	MetadataPort int `json:"metadataPort"`
}

// Register registers a pod with the service listening on socketPath and
// returns the service's answer. The service refuses a pod it already has
// (errdefs.ErrAlreadyExists), an invalid registration
// (errdefs.ErrInvalidArgument) and a caller that is neither root nor its own
// user (errdefs.ErrPermissionDenied); a service that is not running is
// errdefs.ErrUnavailable.
func Register(ctx context.Context, socketPath string, r Registration) (Registered, error) {
	var out Registered
	body, err := json.Marshal(r)
	if err != nil {
		return out, fmt.Errorf("register pod %s with the metadata service: %w", r.UUID, err)
	}
	answer, err := call(ctx, socketPath, "POST", PathPods, body, StatusCreated)
	if err != nil {
		return out, fmt.Errorf("register pod %s with the metadata service: %w", r.UUID, err)
	}
	// An empty answer comes from a service older than Registered: it
	// names no port.
	if len(bytes.TrimSpace(answer)) > 0 {
		if err := json.Unmarshal(answer, &out); err != nil {
			return out, errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("register pod %s with the metadata service: parse its answer: %w", r.UUID, err))
		}
	}
	return out, nil
}

// Unregister removes pod podUUID from the service listening on socketPath.
// A pod the service does not know is errdefs.ErrNotFound.
func Unregister(ctx context.Context, socketPath, podUUID string) error {
	u, err := uuid.Parse(podUUID)
	if err != nil {
		return errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("unregister pod %q from the metadata service: %w", podUUID, err))
	}
	if _, err := call(ctx, socketPath, "DELETE", PathPods+"/"+url.PathEscape(u.String()), nil, StatusNoContent); err != nil {
		return fmt.Errorf("unregister pod %s from the metadata service: %w", u, err)
	}
	return nil
}

// Running reports whether a metadata service answers, and accepts this
// process, on socketPath. It gives up after 2 seconds. A socket path that
// does not exist, the common case of a pod start on a host without the
// service, is answered without dialing: connect(2) would fail the same
// way, and setting up the network poller for it cost every such pod start
// about 0.1 ms (Documentation/performance.md).
func Running(socketPath string) bool {
	if _, err := os.Stat(socketPath); errors.Is(err, fs.ErrNotExist) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	_, err := call(ctx, socketPath, "GET", PathPing, nil, StatusNoContent)
	return err == nil
}

// call makes one HTTP/1.0 request of the registration API and returns the
// body of an answer of status want (at most maxAnswer bytes); any other
// status is an error of the class the status stands for, with the
// service's message.
func call(ctx context.Context, socketPath, method, path string, body []byte, want int) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrUnavailable, err)
	}
	defer func() { _ = c.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// A cancelled ctx ends a read or write under way.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var req bytes.Buffer
	// The host is a placeholder: the request goes to socketPath.
	fmt.Fprintf(&req, "%s %s HTTP/1.0\r\nHost: mds\r\n", method, path)
	if body != nil {
		fmt.Fprintf(&req, "Content-Type: %s\r\nContent-Length: %d\r\n", ContentJSON, len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := c.Write(req.Bytes()); err != nil {
		return nil, errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("send to %s: %w", socketPath, err))
	}
	raw, err := io.ReadAll(io.LimitReader(c, maxResponse+1))
	if err != nil {
		return nil, errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("read the answer of %s: %w", socketPath, err))
	}
	if len(raw) > maxResponse {
		return nil, errdefs.Unavailable("the answer of %s is larger than %d bytes", socketPath, maxResponse)
	}
	resp, err := parseResponse(raw)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("the answer of %s: %w", socketPath, err))
	}
	if resp.status == want {
		return truncate(resp.body, maxAnswer), nil
	}
	text := strings.TrimSpace(string(truncate(resp.body, maxErrorBody)))
	if text == "" {
		text = strings.TrimSpace(strconv.Itoa(resp.status) + " " + resp.reason)
	}
	return nil, errdefs.Newf(ClassOf(resp.status), "%s", text)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// response is an HTTP/1.x answer as parseResponse reads it.
type response struct {
	status int
	reason string
	body   []byte
}

// errMalformed is the error of an answer that is not HTTP/1.x.
var errMalformed = errors.New("not an HTTP/1.x answer")

// parseResponse reads a whole HTTP/1.x answer, read to the end of its
// connection: the status line, the headers, and the body, cut to its
// Content-Length if it has one. An answer in chunks (which an HTTP/1.0
// request does not get) or with a body shorter than its Content-Length
// is an error.
func parseResponse(raw []byte) (response, error) {
	var r response
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return r, fmt.Errorf("%w: no end of headers", errMalformed)
	}
	lines := strings.Split(string(head), "\r\n")
	proto, rest, ok := strings.Cut(lines[0], " ")
	if !ok || (proto != "HTTP/1.0" && proto != "HTTP/1.1") {
		return r, fmt.Errorf("%w: status line %q", errMalformed, truncate([]byte(lines[0]), 80))
	}
	code, reason, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || status < 100 {
		return r, fmt.Errorf("%w: status %q", errMalformed, truncate([]byte(code), 16))
	}
	r.status, r.reason = status, reason
	length := -1
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return r, fmt.Errorf("%w: header line %q", errMalformed, truncate([]byte(l), 80))
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 || (length >= 0 && n != length) {
				return r, fmt.Errorf("%w: Content-Length %q", errMalformed, truncate([]byte(value), 32))
			}
			length = n
		case "transfer-encoding":
			if !strings.EqualFold(value, "identity") {
				return r, fmt.Errorf("%w: Transfer-Encoding %q", errMalformed, truncate([]byte(value), 32))
			}
		}
	}
	if length >= 0 {
		if len(body) < length {
			return r, fmt.Errorf("%w: body of %d bytes, Content-Length %d", errMalformed, len(body), length)
		}
		body = body[:length]
	}
	r.body = body
	return r, nil
}
