package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
)

// The guest's metadata server answers the App Container metadata API
// (appc ace.md, "App Container Metadata Service") to the pod's apps at
// MetadataURL, inside the guest, on behalf of the host's metadata service
// ("nscn metadata-service", internal/mds), where stage0 registered the
// pod:
//
//	app (guest) ──HTTP, loopback──▶ agent's MetadataProxy ──HTTP, the pod's NIC──▶ host's service
//	   AC_METADATA_URL=                 adds the pod's token;           http://GATEWAY:PORT/TOKEN
//	   http://127.0.0.1:18112           the pod's fixed answers
//	                                    fetched once, at boot
//
// Why: under emulation (TCG) each of an app's first requests over the
// pod's network took longer than the 100 ms appc's ACE validator allows
// it, while a request between two processes of the guest does not leave
// the guest's CPUs. The answers that are fixed for the pod's life (its
// manifest, UUID and annotations, each app's image manifest, image ID and
// annotations) are fetched from the host's service once, as the guest
// boots, and then served from memory; everything else (the identity
// endpoints hmac/sign and hmac/verify, whose keys never leave the host,
// and any fixed answer not fetched yet) is forwarded to the host's
// service on a connection kept open. Either way the answer is the host
// service's: its status, headers and body.
//
// The apps' URL carries no token: only the pod reaches the guest's
// loopback, and the server adds the pod's token itself, so the apps never
// hold the pod's credential towards the host. Paths that are not of the
// API's forms are answered 404 here and never reach the host.
const (
	// MetadataConfigFile is where run writes the server's
	// MetadataConfig, in the pod's stage1 rootfs (mode 0600: it holds
	// the pod's token). Without it (a pod stage0 did not register, or one
	// without a network) the agent serves no metadata.
	MetadataConfigFile = "/nscn/state/kvm-metadata.json"
	// MetadataAddr is the address the server listens on in the guest,
	// the port appc's metadata services use. It takes the pod's port
	// 18112 on 127.0.0.1: an app cannot listen there, or on the port of
	// every address.
	MetadataAddr = "127.0.0.1:18112"
	// MetadataURL is the apps' AC_METADATA_URL.
	MetadataURL = "http://" + MetadataAddr
)

// MetadataConfig is the content of MetadataConfigFile.
type MetadataConfig struct {
	// Upstream is the pod's URL at the host's metadata service,
	// http://HOST:PORT/TOKEN (sdpod.MetadataURL).
	Upstream string `json:"upstream"`
}

const (
	metadataV1 = "/acMetadata/v1/"
	// maxMetadataPath bounds a request path: an app name and an
	// annotation name are short identifiers.
	maxMetadataPath = 1024
	// maxForwardBody bounds what an app may send to hmac/sign or
	// hmac/verify; the host's service takes forms of up to 1 MiB and
	// answers 400 to larger ones.
	maxForwardBody = 2 << 20
	// maxAnswer bounds an answer of the host's service: it takes
	// manifests of up to 16 MiB.
	maxAnswer = 17 << 20
	// upstreamTimeout bounds one request to the host's service.
	upstreamTimeout = 30 * time.Second
)

// metadataPathKind says what the server does with a request path.
type metadataPathKind int

const (
	// pathNotAPI is not a path of the metadata API: 404, never forwarded.
	pathNotAPI metadataPathKind = iota
	// pathFixed is an answer fixed for the pod's life: kept once the
	// host's service answered it 200.
	pathFixed
	// pathForward is always forwarded: the identity endpoints.
	pathForward
)

// classifyMetadataPath says whether p (a request's decoded path) is one of
// the metadata API's paths (ace.md; and annotations/NAME, an nscn and rkt
// extension), and which kind. It accepts only the characters of appc's
// names (app names are AC names, annotation names AC identifiers:
// lowercase letters, digits and "-._~/"), no empty, "." or ".." segment
// but the one after "annotations/", so that what it forwards to the host
// is the pod's own path and nothing else.
func classifyMetadataPath(p string) metadataPathKind {
	if len(p) > maxMetadataPath {
		return pathNotAPI
	}
	rest, ok := strings.CutPrefix(p, metadataV1)
	if !ok {
		return pathNotAPI
	}
	for _, c := range rest {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && !strings.ContainsRune("-._~/", c) {
			return pathNotAPI
		}
	}
	segs := strings.Split(rest, "/")
	// annotations, annotations/ and annotations/NAME (NAME may hold
	// slashes), at index i.
	annotations := func(i int) bool {
		if len(segs) <= i || segs[i] != "annotations" {
			return false
		}
		if len(segs) == i+2 && segs[i+1] == "" {
			return true
		}
		return plainSegments(segs[i+1:])
	}
	switch {
	case len(segs) < 2 || segs[0] == "":
		return pathNotAPI
	case segs[0] == "pod":
		switch {
		case len(segs) == 2 && (segs[1] == "manifest" || segs[1] == "uuid"):
			return pathFixed
		case len(segs) == 3 && segs[1] == "hmac" && (segs[2] == "sign" || segs[2] == "verify"):
			return pathForward
		case annotations(1):
			return pathFixed
		}
	case segs[0] == "apps":
		if len(segs) < 3 || !plainSegments(segs[1:2]) {
			return pathNotAPI
		}
		switch {
		case len(segs) == 4 && segs[2] == "image" && (segs[3] == "manifest" || segs[3] == "id"):
			return pathFixed
		case annotations(2):
			return pathFixed
		}
	}
	return pathNotAPI
}

// plainSegments says whether every segment is a name: not empty, "." or
// "..".
func plainSegments(segs []string) bool {
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return false
		}
	}
	return true
}

// answer is an answer of the host's service, as the server keeps it.
type answer struct {
	status int
	header http.Header // of answerHeaders, those it had
	body   []byte
}

// answerHeaders are the headers of the host's answers that the server
// passes on: the others are the HTTP server's own (Date, Content-Length).
var answerHeaders = []string{"Content-Type", "Cache-Control", "Allow", "X-Content-Type-Options"}

// MetadataProxy is the guest's metadata server's handler. Build it with
// NewMetadataProxy; Prefetch fills its memory of the pod's fixed answers.
// It is safe for concurrent use.
type MetadataProxy struct {
	upstream string // http://HOST:PORT/TOKEN, no trailing slash
	client   *http.Client
	log      io.Writer

	mu    sync.RWMutex
	fixed map[string]answer // by path, 200 answers of pathFixed paths
}

// NewMetadataProxy returns the handler for the pod whose URL at the host's
// service is upstream (MetadataConfig.Upstream). log gets a line per
// failure to reach the host's service, never the token.
func NewMetadataProxy(upstream string, log io.Writer) (*MetadataProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("metadata upstream: %w", err))
	}
	if u.Scheme != "http" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(strings.TrimPrefix(u.Path, "/"), "/") {
		return nil, errdefs.InvalidArgument("metadata upstream: want http://HOST:PORT/TOKEN")
	}
	tr := &http.Transport{
		// The host's address, never a proxy the environment names.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       50 * time.Second, // below the service's idle timeout (1 minute)
		ResponseHeaderTimeout: upstreamTimeout,
	}
	return &MetadataProxy{
		upstream: strings.TrimSuffix(upstream, "/"),
		client: &http.Client{
			Transport: tr,
			Timeout:   upstreamTimeout,
			// The service never redirects; an answer is passed on as it is.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:   log,
		fixed: map[string]answer{},
	}, nil
}

// ServeHTTP answers an app's request: a fixed answer from memory, any
// other request of the API forwarded to the host's service, anything
// else 404.
func (m *MetadataProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := classifyMetadataPath(r.URL.Path)
	if kind == pathNotAPI {
		http.NotFound(w, r)
		return
	}
	if kind == pathFixed && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		a, err := m.fixedAnswer(r.Context(), r.URL.Path)
		if err != nil {
			m.unreachable(w, err)
			return
		}
		writeAnswer(w, r, a)
		return
	}
	// The identity endpoints, and a method the service answers 405.
	// The query is not passed on: the service reads none.
	req, err := http.NewRequestWithContext(r.Context(), r.Method, m.upstream+r.URL.Path, http.MaxBytesReader(w, r.Body, maxForwardBody)) //nolint:gosec // G704: the host is the pod's service, the path one of the API's (classifyMetadataPath)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	req.ContentLength = r.ContentLength
	if ct := r.Header.Get("Content-Type"); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	a, err := m.do(req, r.URL.Path)
	if err != nil {
		m.unreachable(w, err)
		return
	}
	writeAnswer(w, r, a)
}

// unreachable answers 502 when the host's service could not be asked.
func (m *MetadataProxy) unreachable(w http.ResponseWriter, err error) {
	_, _ = fmt.Fprintln(m.log, "nscn-agent: metadata:", err)
	http.Error(w, "the host's metadata service does not answer", http.StatusBadGateway)
}

func writeAnswer(w http.ResponseWriter, r *http.Request, a answer) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.WriteHeader(a.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body) // the app went away; nothing to do
	}
}

// fixedAnswer returns the answer to GET p, a pathFixed path: from memory,
// or from the host's service, kept when it is 200.
func (m *MetadataProxy) fixedAnswer(ctx context.Context, p string) (answer, error) {
	m.mu.RLock()
	a, ok := m.fixed[p]
	m.mu.RUnlock()
	if ok {
		return a, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.upstream+p, nil) //nolint:gosec // G704: the host is the pod's service, the path one of the API's (classifyMetadataPath)
	if err != nil {
		return answer{}, err
	}
	if a, err = m.do(req, p); err != nil {
		return answer{}, err
	}
	if a.status == http.StatusOK {
		m.mu.Lock()
		m.fixed[p] = a
		m.mu.Unlock()
	}
	return a, nil
}

// do sends req, for the API's path p, to the host's service and reads its
// answer. Its errors name p, never the token.
func (m *MetadataProxy) do(req *http.Request, p string) (answer, error) {
	resp, err := m.client.Do(req) //nolint:gosec // G704: the host is the pod's service, the path one of the API's (classifyMetadataPath)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL holds the token
		}
		return answer{}, errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("%s %s: %w", req.Method, p, err))
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return answer{}, errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("%s %s: read the answer: %w", req.Method, p, err))
	}
	if len(body) > maxAnswer {
		return answer{}, errdefs.Newf(errdefs.ErrUnavailable, "%s %s: an answer larger than %d bytes", req.Method, p, maxAnswer)
	}
	a := answer{status: resp.StatusCode, header: http.Header{}, body: body}
	for _, k := range answerHeaders {
		if v := resp.Header.Values(k); len(v) > 0 {
			a.header[k] = v
		}
	}
	return a, nil
}

// Prefetch asks the host's service for the pod's fixed answers (the pod's
// manifest, UUID and annotations; each app's image manifest, image ID and
// annotations) and keeps them, retrying while the service does not answer,
// until ctx is done. The answers to annotations/NAME are fetched when an
// app first asks.
func (m *MetadataProxy) Prefetch(ctx context.Context) error {
	var (
		man answer
		err error
	)
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		if man, err = m.fixedAnswer(ctx, metadataV1+"pod/manifest"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fetch the pod's metadata: %w", err)
		case <-time.After(delay):
		}
	}
	if man.status != http.StatusOK {
		return fmt.Errorf("fetch the pod's metadata: the host's service answered %d", man.status)
	}
	var pm struct {
		Apps []struct {
			Name string `json:"name"`
		} `json:"apps"`
	}
	if err := json.NewDecoder(bytes.NewReader(man.body)).Decode(&pm); err != nil {
		return fmt.Errorf("fetch the pod's metadata: parse the pod manifest: %w", err)
	}
	paths := []string{"pod/uuid", "pod/annotations"}
	for _, a := range pm.Apps {
		for _, s := range []string{"image/manifest", "image/id", "annotations"} {
			paths = append(paths, "apps/"+a.Name+"/"+s)
		}
	}
	var errs []error
	for _, p := range paths {
		if classifyMetadataPath(metadataV1+p) != pathFixed {
			continue // an app name no service would answer
		}
		if _, err := m.fixedAnswer(ctx, metadataV1+p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fetch the pod's metadata: %w", err)
	}
	return nil
}

// ParseMetadataConfig reads a MetadataConfigFile.
func ParseMetadataConfig(b []byte) (MetadataConfig, error) {
	var c MetadataConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return c, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("%s: %w", MetadataConfigFile, err))
	}
	if c.Upstream == "" {
		return c, errdefs.InvalidArgument("%s: no upstream", MetadataConfigFile)
	}
	return c, nil
}
