package download

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Timeouts of the built-in transport. There is deliberately none for the
// whole exchange: an image body takes as long as it takes, bounded by the
// context and the stall timeout.
const (
	dialTimeout           = 30 * time.Second
	tlsHandshakeTimeout   = 15 * time.Second
	responseHeaderTimeout = 60 * time.Second
	maxRedirects          = 10
)

// client returns the HTTP client to use and a function that releases it.
func (o *Options) client() (*http.Client, func()) {
	var c http.Client
	release := func() {}
	if o.Client != nil {
		c = *o.Client
	} else {
		tr := &http.Transport{
			Proxy:       http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig: &tls.Config{
				MinVersion:         tls.VersionTLS12,
				RootCAs:            o.RootCAs,
				InsecureSkipVerify: o.InsecureTLS, //nolint:gosec // G402: only with --insecure-options=tls
			},
			TLSHandshakeTimeout:   tlsHandshakeTimeout,
			ResponseHeaderTimeout: responseHeaderTimeout,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
			// Byte offsets must be those of the stored object.
			DisableCompression: true,
		}
		c.Transport = tr
		release = tr.CloseIdleConnections
	}
	c.CheckRedirect = redirectPolicy(o.InsecureHTTP, c.CheckRedirect)
	return &c, release
}

// redirectPolicy follows redirects to https, and to http only when
// insecureHTTP is set, so https never silently becomes http. next, if set,
// is consulted after that rule.
func redirectPolicy(insecureHTTP bool, next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		from := via[len(via)-1].URL.Redacted()
		switch req.URL.Scheme {
		case "https":
		case "http":
			if !insecureHTTP {
				return errdefs.PermissionDenied("redirect from %s to plain http %s is refused: use --insecure-options=http to allow it", from, req.URL.Redacted())
			}
		default:
			return errdefs.InvalidArgument("redirect from %s to %s: unsupported scheme %q", from, req.URL.Redacted(), req.URL.Scheme)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return errdefs.Unavailable("stopped after %d redirects from %s", len(via), via[0].URL.Redacted())
		}
		return nil
	}
}

// requestError classifies a failure of client.Do for the URL shown.
func requestError(ctx context.Context, shown string, err error) error {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	var (
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	switch {
	case ctx.Err() != nil && !errors.Is(cause, ctx.Err()):
		return fmt.Errorf("get %s: %w: %w", shown, ctx.Err(), cause)
	case ctx.Err() != nil:
		return fmt.Errorf("get %s: %w", shown, cause)
	case errors.Is(cause, errdefs.ErrPermissionDenied), errors.Is(cause, errdefs.ErrInvalidArgument),
		errors.Is(cause, errdefs.ErrUnavailable):
		// From the redirect policy; already says what happened.
		return cause
	case errors.As(cause, &verify), errors.As(cause, &unknown), errors.As(cause, &host), errors.As(cause, &invalid):
		return errdefs.PermissionDenied("get %s: %w (use --insecure-options=tls to skip certificate verification)", shown, cause)
	}
	return errdefs.Unavailable("get %s: %w", shown, cause)
}

// statusError classifies an HTTP status the transfer cannot use.
func statusError(shown string, resp *http.Response) error {
	code := resp.StatusCode
	class := errdefs.ErrUnavailable
	switch {
	case code == http.StatusNotFound, code == http.StatusGone:
		class = errdefs.ErrNotFound
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		class = errdefs.ErrPermissionDenied
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		class = errdefs.ErrUnavailable
	case code >= 400:
		class = errdefs.ErrInvalidArgument
	}
	return errdefs.Newf(class, "get %s: server answered %s", shown, resp.Status)
}
