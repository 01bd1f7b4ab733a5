package guest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/mds"
)

// The test pods, registered with the host's service (internal/mds, the
// real one) by token, as stage0 registers pods.
const (
	podP   = "6733c088-a507-4694-aabf-edbe4fc5266f"
	podQ   = "0f4d2c1a-9b8e-4c7d-a6f5-e4d3c2b1a098"
	tokenP = "Y4vFeVZzKM2T9rwkpWHfqXuGsNjS6O5cQ1w2E3r4T5y" //nolint:gosec // G101: the test's made-up token
	tokenQ = "Qq4vFeVZzKM2T9rwkpWHfqXuGsNjS6O5cQ1w2E3r4T"  //nolint:gosec // G101: the test's made-up token
	idWeb  = "sha512-aaaa0000000000000000000000000000000000000000000000000000000000000000"
)

func testRegistration(u, tok string, apps ...string) mds.Registration {
	var as []string
	ims := map[string]json.RawMessage{}
	for _, a := range apps {
		as = append(as, `{"name":"`+a+`","image":{"name":"example.com/`+a+`","id":"`+idWeb+`"},"annotations":[{"name":"example.com/override","value":"from-pod"}]}`)
		ims[a] = json.RawMessage(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/` + a + `","annotations":[{"name":"example.com/override","value":"from-image"},{"name":"example.com/team/owner","value":"` + a + `"}]}`)
	}
	return mds.Registration{
		UUID:           u,
		PodManifest:    json.RawMessage(`{"acVersion":"0.8.11","acKind":"PodManifest","apps":[` + strings.Join(as, ",") + `],"annotations":[{"name":"example.com/team/owner","value":"pod-` + u[:4] + `"}]}`),
		ImageManifests: ims,
		Token:          tok,
	}
}

// hostService starts the host's metadata service with pods P (apps web
// and db) and Q (app other) registered, and returns the base URL of its
// metadata API and a function that stops it.
func hostService(t *testing.T) (base string, stop func()) {
	t.Helper()
	s := mds.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, r := range []mds.Registration{testRegistration(podP, tokenP, "web", "db"), testRegistration(podQ, tokenQ, "other")} {
		if err := s.Register(r); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, mds.Listeners{Metadata: []net.Listener{l}}) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("host service: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return "http://" + l.Addr().String(), stop
}

// guestServer starts a MetadataProxy for pod P in front of the host's
// service at base and returns its URL (the apps' AC_METADATA_URL).
func guestServer(t *testing.T, base string) (*MetadataProxy, string) {
	t.Helper()
	p, err := NewMetadataProxy(base+"/"+tokenP, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

type reply struct {
	status int
	// The headers the service sets.
	contentType, cacheControl, allow, noSniff string
	body                                      string
}

func ask(t *testing.T, method, u string, form url.Values) reply {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := resp.Header
	return reply{
		status: resp.StatusCode, body: string(b),
		contentType: h.Get("Content-Type"), cacheControl: h.Get("Cache-Control"), allow: h.Get("Allow"), noSniff: h.Get("X-Content-Type-Options"),
	}
}

// TestMetadataProxyAnswersAsTheService: every request of the API gets from
// the guest's server what the host's service answers pod P's token: the
// same status, headers (Content-Type, Cache-Control, Allow,
// X-Content-Type-Options) and body, for the fixed answers, the identity
// endpoints and the errors.
func TestMetadataProxyAnswersAsTheService(t *testing.T) {
	base, _ := hostService(t)
	_, guest := guestServer(t, base)
	sig := ask(t, http.MethodPost, base+"/"+tokenP+"/acMetadata/v1/pod/hmac/sign", url.Values{"content": {"hello"}}).body
	tests := []struct {
		name, method, path string
		form               url.Values
		want               int
	}{
		{name: "pod manifest", method: http.MethodGet, path: "pod/manifest", want: 200},
		{name: "pod uuid", method: http.MethodGet, path: "pod/uuid", want: 200},
		{name: "pod annotations", method: http.MethodGet, path: "pod/annotations", want: 200},
		{name: "pod annotations slash", method: http.MethodGet, path: "pod/annotations/", want: 200},
		{name: "pod annotation with slashes", method: http.MethodGet, path: "pod/annotations/example.com/team/owner", want: 200},
		{name: "missing pod annotation", method: http.MethodGet, path: "pod/annotations/example.com/none", want: 404},
		{name: "app image manifest", method: http.MethodGet, path: "apps/web/image/manifest", want: 200},
		{name: "app image id", method: http.MethodGet, path: "apps/db/image/id", want: 200},
		{name: "app annotations", method: http.MethodGet, path: "apps/web/annotations", want: 200},
		{name: "app annotation", method: http.MethodGet, path: "apps/web/annotations/example.com/override", want: 200},
		{name: "head", method: http.MethodHead, path: "apps/web/image/id", want: 200},
		{name: "another pod's app", method: http.MethodGet, path: "apps/other/image/id", want: 404},
		{name: "sign", method: http.MethodPost, path: "pod/hmac/sign", form: url.Values{"content": {"hello"}}, want: 200},
		{name: "sign empty content", method: http.MethodPost, path: "pod/hmac/sign", form: url.Values{"content": {""}}, want: 200},
		{name: "sign without content", method: http.MethodPost, path: "pod/hmac/sign", form: url.Values{"x": {"1"}}, want: 400},
		{name: "verify own", method: http.MethodPost, path: "pod/hmac/verify", form: url.Values{"content": {"hello"}, "uuid": {podP}, "signature": {sig}}, want: 200},
		{name: "verify as another pod", method: http.MethodPost, path: "pod/hmac/verify", form: url.Values{"content": {"hello"}, "uuid": {podQ}, "signature": {sig}}, want: 403},
		{name: "verify bad uuid", method: http.MethodPost, path: "pod/hmac/verify", form: url.Values{"content": {"hello"}, "uuid": {"x"}, "signature": {sig}}, want: 400},
		{name: "post to a fixed answer", method: http.MethodPost, path: "pod/manifest", form: url.Values{}, want: 405},
		{name: "get of sign", method: http.MethodGet, path: "pod/hmac/sign", want: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			direct := ask(t, tt.method, base+"/"+tokenP+"/acMetadata/v1/"+tt.path, tt.form)
			got := ask(t, tt.method, guest+"/acMetadata/v1/"+tt.path, tt.form)
			if direct.status != tt.want {
				t.Fatalf("the host's service answered %d, want %d (test setup)", direct.status, tt.want)
			}
			if got != direct {
				t.Errorf("guest server: %+v\nhost service: %+v", got, direct)
			}
		})
	}
}

// TestMetadataProxyRefusesOtherPaths: a path that is not the API's is
// 404 from the guest's server itself; in particular none reaches another
// pod's answers at the host's service, where Q's token would be enough.
func TestMetadataProxyRefusesOtherPaths(t *testing.T) {
	base, _ := hostService(t)
	_, guest := guestServer(t, base)
	if r := ask(t, http.MethodGet, base+"/"+tokenQ+"/acMetadata/v1/pod/uuid", nil); r.body != podQ {
		t.Fatalf("Q's token at the host's service: %+v (test setup)", r)
	}
	for _, p := range []string{
		"/",
		"/acMetadata/v1/",
		"/acMetadata/v1/pod",
		"/acMetadata/v2/pod/uuid",
		"/" + tokenQ + "/acMetadata/v1/pod/uuid",
		"/" + tokenP + "/acMetadata/v1/pod/uuid",
		"/acMetadata/v1/../../" + tokenQ + "/acMetadata/v1/pod/uuid",
		"/acMetadata/v1/apps/../../../" + tokenQ + "/acMetadata/v1/pod/uuid",
		"/acMetadata/v1/apps/./image/id",
		"/acMetadata/v1/apps//image/id",
		"/acMetadata/v1/pod/annotations/../../../" + tokenQ + "/acMetadata/v1/pod/uuid",
		"/acMetadata/v1/pod/annotations/a//b",
		"/acMetadata/v1/pod/uuid/",
		"/acMetadata/v1/pod/hmac",
		"/acMetadata/v1/apps/Web/image/id",
		"/acMetadata/v1/apps/web%2F..%2F..%2Fx/image/id",
		"/acMetadata/v1/apps/web/image",
		"/acMetadata/v1/" + strings.Repeat("a/", 600),
	} {
		t.Run(strconv.Quote(p), func(t *testing.T) {
			// Sent as it is: a client that cleans paths would hide the
			// case.
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, guest, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = p
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || strings.Contains(string(b), podQ) {
				t.Errorf("GET %s: %d %q, want 404", p, resp.StatusCode, b)
			}
		})
	}
}

// TestMetadataProxyKeepsFixedAnswers: once Prefetch has run, the pod's
// fixed answers come from the guest's server alone (the host's service is
// stopped here), while the identity endpoints, which need the host's
// keys, fail with 502.
func TestMetadataProxyKeepsFixedAnswers(t *testing.T) {
	base, stop := hostService(t)
	p, guest := guestServer(t, base)
	want := map[string]reply{}
	paths := []string{"pod/manifest", "pod/uuid", "pod/annotations", "apps/web/image/manifest", "apps/web/image/id", "apps/web/annotations", "apps/db/image/id"}
	for _, path := range paths {
		want[path] = ask(t, http.MethodGet, base+"/"+tokenP+"/acMetadata/v1/"+path, nil)
	}
	if err := p.Prefetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop()
	for _, path := range paths {
		if got := ask(t, http.MethodGet, guest+"/acMetadata/v1/"+path, nil); got != want[path] {
			t.Errorf("%s with the host's service stopped: %+v, want %+v", path, got, want[path])
		}
	}
	if got := ask(t, http.MethodPost, guest+"/acMetadata/v1/pod/hmac/sign", url.Values{"content": {"x"}}); got.status != http.StatusBadGateway {
		t.Errorf("sign with the host's service stopped: %+v, want 502", got)
	}
	if got := ask(t, http.MethodGet, guest+"/acMetadata/v1/apps/web/annotations/example.com/override", nil); got.status != http.StatusBadGateway {
		t.Errorf("an annotation not fetched yet, with the host's service stopped: %+v, want 502", got)
	}
}

// TestMetadataProxyPrefetchWaitsForTheService: Prefetch retries while the
// host's service does not answer (the guest's network comes up as it
// boots) and gives up when its context ends.
func TestMetadataProxyPrefetchWaitsForTheService(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing answers there now
	p, err := NewMetadataProxy("http://"+addr+"/"+tokenP, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = p.Prefetch(ctx)
	if err == nil || strings.Contains(err.Error(), tokenP) {
		t.Fatalf("Prefetch with no service = %v, want an error without the token", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "refused") {
		t.Errorf("Prefetch with no service = %v", err)
	}
}

func TestNewMetadataProxyUpstream(t *testing.T) {
	tests := []struct {
		name, upstream string
		ok             bool
	}{
		{name: "token", upstream: "http://172.16.28.1:18112/" + tokenP, ok: true},
		{name: "no token", upstream: "http://172.16.28.1:18112", ok: true},
		{name: "https", upstream: "https://172.16.28.1:18112/" + tokenP},
		{name: "no host", upstream: "http:///" + tokenP},
		{name: "two segments", upstream: "http://172.16.28.1:18112/a/b"},
		{name: "query", upstream: "http://172.16.28.1:18112/a?x=1"},
		{name: "user", upstream: "http://u@172.16.28.1:18112/a"},
		{name: "not a URL", upstream: "http://[::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewMetadataProxy(tt.upstream, io.Discard); (err == nil) != tt.ok {
				t.Errorf("NewMetadataProxy(%q) = %v, want ok=%v", tt.upstream, err, tt.ok)
			}
		})
	}
}

func TestParseMetadataConfig(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{name: "upstream", in: `{"upstream":"http://10.0.0.1:18112/tok"}`, ok: true},
		{name: "empty", in: `{}`},
		{name: "not json", in: `upstream`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseMetadataConfig([]byte(tt.in)); (err == nil) != tt.ok {
				t.Errorf("ParseMetadataConfig(%s) = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func TestClassifyMetadataPath(t *testing.T) {
	tests := []struct {
		path string
		want metadataPathKind
	}{
		{"/acMetadata/v1/pod/manifest", pathFixed},
		{"/acMetadata/v1/pod/uuid", pathFixed},
		{"/acMetadata/v1/pod/annotations", pathFixed},
		{"/acMetadata/v1/pod/annotations/", pathFixed},
		{"/acMetadata/v1/pod/annotations/example.com/a_b~c", pathFixed},
		{"/acMetadata/v1/apps/web-1/image/manifest", pathFixed},
		{"/acMetadata/v1/apps/web/image/id", pathFixed},
		{"/acMetadata/v1/apps/web/annotations/", pathFixed},
		{"/acMetadata/v1/apps/web/annotations/x", pathFixed},
		{"/acMetadata/v1/pod/hmac/sign", pathForward},
		{"/acMetadata/v1/pod/hmac/verify", pathForward},
		{"/acMetadata/v1/pod/annotations/..", pathNotAPI},
		{"/acMetadata/v1/pod/annotations//", pathNotAPI},
		{"/acMetadata/v1/apps/web/annotations/a/../b", pathNotAPI},
		{"/acMetadata/v1/apps/../image/id", pathNotAPI},
		{"/acMetadata/v1/apps/web/image/id/", pathNotAPI},
		{"/acMetadata/v1/pod/hmac/sign/x", pathNotAPI},
		{"/acMetadata/v1/apps/WEB/image/id", pathNotAPI},
		{"/acMetadata/v1/apps/a b/image/id", pathNotAPI},
		{"/x/acMetadata/v1/pod/uuid", pathNotAPI},
		{"", pathNotAPI},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.path), func(t *testing.T) {
			if got := classifyMetadataPath(tt.path); got != tt.want {
				t.Errorf("classifyMetadataPath(%q) = %d, want %d", tt.path, got, tt.want)
			}
		})
	}
}

// FuzzClassifyMetadataPath: whatever an app sends, a path the server
// passes on to the host's service starts with the API's prefix, holds
// only appc's name characters and no "." or ".." segment, and so cannot
// name another token.
func FuzzClassifyMetadataPath(f *testing.F) {
	for _, s := range []string{"/acMetadata/v1/pod/uuid", "/acMetadata/v1/apps/web/annotations/a/b", "/acMetadata/v1/pod/hmac/sign", "/acMetadata/v1/../x", "/acMetadata/v1/pod/annotations/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if classifyMetadataPath(p) == pathNotAPI {
			return
		}
		rest, ok := strings.CutPrefix(p, metadataV1)
		if !ok || len(p) > maxMetadataPath {
			t.Fatalf("%q accepted", p)
		}
		segs := strings.Split(rest, "/")
		for i, s := range segs {
			if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
				t.Fatalf("%q accepted with segment %q", p, s)
			}
		}
		if strings.ContainsAny(rest, "%?#\\:@ ") || strings.ToLower(rest) != rest {
			t.Fatalf("%q accepted", p)
		}
	})
}
