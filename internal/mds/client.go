package mds

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"

	"github.com/nosecone/nscn/internal/errdefs"
)

// maxErrorBody bounds the error message read from the service.
const maxErrorBody = 4 << 10

// Register registers a pod with the service listening on socketPath. The
// service refuses a pod it already has (errdefs.ErrAlreadyExists), an
// invalid registration (errdefs.ErrInvalidArgument) and a caller that is
// neither root nor its own user (errdefs.ErrPermissionDenied); a service
// that is not running is errdefs.ErrUnavailable.
func Register(ctx context.Context, socketPath string, r Registration) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("register pod %s with the metadata service: %w", r.UUID, err)
	}
	if err := call(ctx, socketPath, http.MethodPost, pathPods, body, http.StatusCreated); err != nil {
		return fmt.Errorf("register pod %s with the metadata service: %w", r.UUID, err)
	}
	return nil
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
// process, on socketPath. It gives up after 2 seconds.
func Running(socketPath string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	return call(ctx, socketPath, http.MethodGet, pathPing, nil, http.StatusNoContent) == nil
}

// call makes one request of the registration API and turns any status but
// want into an error of the class the status stands for.
func call(ctx context.Context, socketPath, method, path string, body []byte, want int) error {
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
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentJSON)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return errdefs.With(errdefs.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == want {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	text := strings.TrimSpace(string(msg))
	if text == "" {
		text = resp.Status
	}
	return errdefs.Newf(classOf(resp.StatusCode), "%s", text)
}
