package mds

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/google/uuid"

	"github.com/nosecone/nscn/internal/errdefs"
)

// maxErrorBody bounds the error message read from the service, and
// maxAnswer a successful answer.
const (
	maxErrorBody = 4 << 10
	maxAnswer    = 4 << 10
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
	answer, err := callBody(ctx, socketPath, http.MethodPost, pathPods, body, http.StatusCreated)
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
	if err := call(ctx, socketPath, http.MethodDelete, pathPods+"/"+url.PathEscape(u.String()), nil, http.StatusNoContent); err != nil {
		return fmt.Errorf("unregister pod %s from the metadata service: %w", u, err)
	}
	return nil
}

// Running reports whether a metadata service answers, and accepts this
// process, on socketPath. It gives up after 2 seconds. A socket path that
// does not exist, the common case of a pod start on a host without the
// service, is answered without dialing: connect(2) would fail the same
// way, and setting up the HTTP client and the network poller for it cost
// every such pod start about 0.1 ms (Documentation/performance.md).
func Running(socketPath string) bool {
	if _, err := os.Stat(socketPath); errors.Is(err, fs.ErrNotExist) { //nolint:gosec // G703: the socket the caller names, which it would dial anyway
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	return call(ctx, socketPath, http.MethodGet, pathPing, nil, http.StatusNoContent) == nil
}

// call makes one request of the registration API and turns any status but
// want into an error of the class the status stands for.
func call(ctx context.Context, socketPath, method, path string, body []byte, want int) error {
	_, err := callBody(ctx, socketPath, method, path, body, want)
	return err
}

// callBody is call that also returns the body of a successful answer
// (at most maxAnswer bytes).
func callBody(ctx context.Context, socketPath, method, path string, body []byte, want int) ([]byte, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	// The host is a placeholder: the transport always dials socketPath.
	req, err := http.NewRequestWithContext(ctx, method, "http://mds"+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentJSON)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrUnavailable, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == want {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		if err != nil {
			return nil, errdefs.With(errdefs.ErrUnavailable, err)
		}
		return b, nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	text := strings.TrimSpace(string(msg))
	if text == "" {
		text = resp.Status
	}
	return nil, errdefs.Newf(classOf(resp.StatusCode), "%s", text)
}
