package mds

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// do sends one request to the metadata handler of s as if from remote.
func do(t *testing.T, s *Server, remote, method, path string, form url.Values) *http.Response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, "http://mds"+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	(&metadataHandler{reg: s.reg, log: s.log}).ServeHTTP(rec, req)
	return rec.Result()
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const (
	fromA     = "10.1.0.2:40000"
	fromB     = "10.1.0.3:40000"
	fromOther = "10.1.0.99:40000"
	viaB      = "/" + tokenB // path prefix of pod B's AC_METADATA_URL
)

func TestMetadataEndpoints(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		name        string
		remote      string
		method      string // GET if empty
		path        string
		status      int
		contentType string
		body        string // exact body, if set
		contains    []string
		json        bool // body must be valid JSON
	}{
		// Pod A, identified by its address.
		{
			name: "A pod annotations", remote: fromA, path: "/acMetadata/v1/pod/annotations", status: 200, contentType: contentJSON, json: true,
			body: `[{"name":"ip-address","value":"10.1.0.2"},{"name":"example.com/team/owner","value":"pod-10.1.0.2"}]`,
		},
		{name: "A pod annotations slash", remote: fromA, path: "/acMetadata/v1/pod/annotations/", status: 200, contentType: contentJSON, json: true, contains: []string{`"ip-address"`}},
		{name: "A pod annotation", remote: fromA, path: "/acMetadata/v1/pod/annotations/ip-address", status: 200, contentType: contentUTF8, body: "10.1.0.2"},
		{name: "A pod annotation with slashes", remote: fromA, path: "/acMetadata/v1/pod/annotations/example.com/team/owner", status: 200, body: "pod-10.1.0.2"},
		{name: "A unknown pod annotation", remote: fromA, path: "/acMetadata/v1/pod/annotations/nope", status: 404},
		{name: "A pod manifest", remote: fromA, path: "/acMetadata/v1/pod/manifest", status: 200, contentType: contentJSON, json: true, body: string(regA().PodManifest)},
		{name: "A pod uuid", remote: fromA, path: "/acMetadata/v1/pod/uuid", status: 200, contentType: contentASCII, body: uuidA},
		{name: "A pod uuid HEAD", remote: fromA, method: "HEAD", path: "/acMetadata/v1/pod/uuid", status: 200},
		{
			name: "A app annotations merged", remote: fromA, path: "/acMetadata/v1/apps/web/annotations", status: 200, contentType: contentJSON, json: true,
			body: `[{"name":"example.com/override","value":"from-pod-web"},{"name":"example.com/image-only","value":"image-web"}]`,
		},
		{name: "A app annotations slash", remote: fromA, path: "/acMetadata/v1/apps/web/annotations/", status: 200, json: true, contains: []string{"from-pod-web"}},
		{name: "A app annotation pod overrides image", remote: fromA, path: "/acMetadata/v1/apps/web/annotations/example.com/override", status: 200, contentType: contentUTF8, body: "from-pod-web"},
		{name: "A app annotation from image", remote: fromA, path: "/acMetadata/v1/apps/web/annotations/example.com/image-only", status: 200, body: "image-web"},
		{name: "A app unknown annotation", remote: fromA, path: "/acMetadata/v1/apps/web/annotations/nope", status: 404},
		{name: "A image manifest", remote: fromA, path: "/acMetadata/v1/apps/web/image/manifest", status: 200, contentType: contentJSON, json: true, body: string(imageManifest("web"))},
		{name: "A image id", remote: fromA, path: "/acMetadata/v1/apps/web/image/id", status: 200, contentType: contentASCII, body: idA},
		{name: "A unknown app", remote: fromA, path: "/acMetadata/v1/apps/nope/image/id", status: 404},
		{name: "A other pod's app", remote: fromA, path: "/acMetadata/v1/apps/db/image/id", status: 404},
		{name: "A unknown app entry", remote: fromA, path: "/acMetadata/v1/apps/web/image/size", status: 404},
		{name: "A app without entry", remote: fromA, path: "/acMetadata/v1/apps/web", status: 404},
		{name: "A unknown pod entry", remote: fromA, path: "/acMetadata/v1/pod/nope", status: 404},
		{name: "A unknown version", remote: fromA, path: "/acMetadata/v2/pod/uuid", status: 404},
		{name: "A not metadata", remote: fromA, path: "/index.html", status: 404},
		{name: "A POST to GET endpoint", remote: fromA, method: "POST", path: "/acMetadata/v1/pod/uuid", status: 405},
		{name: "A IPv4-mapped source", remote: "[::ffff:10.1.0.2]:40000", path: "/acMetadata/v1/pod/uuid", status: 200, body: uuidA},

		// Pod B, identified by its token, from its address.
		{name: "B pod uuid", remote: fromB, path: viaB + "/acMetadata/v1/pod/uuid", status: 200, body: uuidB},
		{name: "B pod annotation", remote: fromB, path: viaB + "/acMetadata/v1/pod/annotations/ip-address", status: 200, body: "10.1.0.3"},
		{name: "B pod manifest", remote: fromB, path: viaB + "/acMetadata/v1/pod/manifest", status: 200, json: true, body: string(regB().PodManifest)},
		{name: "B second app", remote: fromB, path: viaB + "/acMetadata/v1/apps/cache/image/manifest", status: 200, json: true, body: string(imageManifest("cache"))},
		{name: "B image id", remote: fromB, path: viaB + "/acMetadata/v1/apps/db/image/id", status: 200, body: idB},
		{name: "B other pod's app", remote: fromB, path: viaB + "/acMetadata/v1/apps/web/image/id", status: 404},
		{name: "B token without metadata path", remote: fromB, path: viaB + "/other", status: 404},

		// Wrong pod: every credential that does not fit exactly one pod.
		{name: "unknown address", remote: fromOther, path: "/acMetadata/v1/pod/uuid", status: 403},
		{name: "unknown address unknown path", remote: fromOther, path: "/acMetadata/v1/nope", status: 403},
		{name: "token pod by address only", remote: fromB, path: "/acMetadata/v1/pod/uuid", status: 403},
		{name: "B token from A's address", remote: fromA, path: viaB + "/acMetadata/v1/pod/uuid", status: 403},
		{name: "B token from unknown address", remote: fromOther, path: viaB + "/acMetadata/v1/pod/manifest", status: 403},
		{name: "unknown token", remote: fromA, path: "/Z4vFeVZzKM2T9rwkpWHfqXuGsNjS6O5cQ1w2E3r4T5y/acMetadata/v1/pod/uuid", status: 403},
		{name: "token prefix", remote: fromB, path: viaB[:20] + "/acMetadata/v1/pod/uuid", status: 403},
		{name: "pod uuid as token", remote: fromA, path: "/" + uuidA + "/acMetadata/v1/pod/uuid", status: 403},
		{name: "loopback", remote: "127.0.0.1:40000", path: "/acMetadata/v1/pod/uuid", status: 403},
		{name: "bad remote", remote: "pipe", path: "/acMetadata/v1/pod/uuid", status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			resp := do(t, s, tt.remote, method, tt.path, nil)
			body := readBody(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s from %s: status %d (%q), want %d", method, tt.path, tt.remote, resp.StatusCode, body, tt.status)
			}
			if tt.contentType != "" {
				if got := resp.Header.Get("Content-Type"); got != tt.contentType {
					t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
				}
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("body = %q, want %q", body, tt.body)
			}
			for _, c := range tt.contains {
				if !strings.Contains(body, c) {
					t.Errorf("body %q does not contain %q", body, c)
				}
			}
			if tt.json && !json.Valid([]byte(body)) {
				t.Errorf("body %q is not JSON", body)
			}
		})
	}
}

func TestEmptyAnnotations(t *testing.T) {
	tests := []struct {
		name        string
		podAnnots   string // the pod manifest's annotations member, "" for none
		wantPod     string
		wantAppList string
	}{
		// The pod's list answers as the manifest has it, which the ACE
		// validator checks; an app's list is always a list.
		{name: "absent", podAnnots: "", wantPod: "null", wantAppList: "[]"},
		{name: "null", podAnnots: `,"annotations":null`, wantPod: "null", wantAppList: "[]"},
		{name: "empty list", podAnnots: `,"annotations":[]`, wantPod: "[]", wantAppList: "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer(testLogger(t))
			r := regA()
			r.PodManifest = json.RawMessage(`{"acVersion":"0.8.11","acKind":"PodManifest","apps":[{"name":"web","image":{"id":"` + idA + `"}}]` + tt.podAnnots + `}`)
			r.ImageManifests["web"] = json.RawMessage(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/web"}`)
			if err := s.Register(r); err != nil {
				t.Fatal(err)
			}
			for path, want := range map[string]string{
				"/acMetadata/v1/pod/annotations":      tt.wantPod,
				"/acMetadata/v1/apps/web/annotations": tt.wantAppList,
			} {
				resp := do(t, s, fromA, "GET", path, nil)
				if body := readBody(t, resp); resp.StatusCode != 200 || body != want {
					t.Errorf("GET %s = %d %q, want 200 %s", path, resp.StatusCode, body, want)
				}
			}
		})
	}
}

func TestUnregisteredPodIsForbidden(t *testing.T) {
	s := newTestServer(t)
	if err := s.Unregister(uuidB); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, remote, path string }{
		{name: "token", remote: fromB, path: viaB + "/acMetadata/v1/pod/uuid"},
		{name: "address", remote: fromB, path: "/acMetadata/v1/pod/uuid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if resp := do(t, s, tt.remote, "GET", tt.path, nil); resp.StatusCode != 403 {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
		})
	}
	// A's address still works.
	if resp := do(t, s, fromA, "GET", "/acMetadata/v1/pod/uuid", nil); resp.StatusCode != 200 {
		t.Fatalf("pod A after unregistering B: status %d", resp.StatusCode)
	}
}

// sign has pod A sign content and returns the signature.
func sign(t *testing.T, s *Server, remote, prefix, content string) string {
	t.Helper()
	resp := do(t, s, remote, "POST", prefix+"/acMetadata/v1/pod/hmac/sign", url.Values{"content": {content}})
	body := readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("sign: status %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != contentASCII {
		t.Fatalf("sign: Content-Type %q", ct)
	}
	if b, err := base64.StdEncoding.DecodeString(body); err != nil || len(b) != 64 {
		t.Fatalf("sign: body %q is not a base64 HMAC-SHA512 (%d bytes, %v)", body, len(b), err)
	}
	return body
}

func TestHMAC(t *testing.T) {
	s := newTestServer(t)
	const content = "the object to sign\x00with a NUL"
	sigA := sign(t, s, fromA, "", content)
	sigB := sign(t, s, fromB, viaB, content)
	if sigA == sigB {
		t.Fatal("pods A and B signed with the same key")
	}
	if again := sign(t, s, fromA, "", content); again != sigA {
		t.Fatalf("signing twice gave %q and %q", sigA, again)
	}
	flipped := []byte(sigA)
	if flipped[0] == 'A' {
		flipped[0] = 'B'
	} else {
		flipped[0] = 'A'
	}

	tests := []struct {
		name   string
		remote string
		prefix string
		form   url.Values
		status int
	}{
		{name: "B verifies A", remote: fromB, prefix: viaB, form: url.Values{"content": {content}, "uuid": {uuidA}, "signature": {sigA}}, status: 200},
		{name: "A verifies itself", remote: fromA, form: url.Values{"content": {content}, "uuid": {uuidA}, "signature": {sigA}}, status: 200},
		{name: "A verifies B", remote: fromA, form: url.Values{"content": {content}, "uuid": {uuidB}, "signature": {sigB}}, status: 200},
		{name: "uuid without dashes", remote: fromA, form: url.Values{"content": {content}, "uuid": {strings.ReplaceAll(uuidB, "-", "")}, "signature": {sigB}}, status: 200},
		{name: "tampered content", remote: fromB, prefix: viaB, form: url.Values{"content": {content + "!"}, "uuid": {uuidA}, "signature": {sigA}}, status: 403},
		{name: "tampered signature", remote: fromB, prefix: viaB, form: url.Values{"content": {content}, "uuid": {uuidA}, "signature": {string(flipped)}}, status: 403},
		{name: "other pod's uuid", remote: fromB, prefix: viaB, form: url.Values{"content": {content}, "uuid": {uuidB}, "signature": {sigA}}, status: 403},
		{name: "unregistered uuid", remote: fromB, prefix: viaB, form: url.Values{"content": {content}, "uuid": {uuidC}, "signature": {sigA}}, status: 403},
		{name: "signature not base64", remote: fromB, prefix: viaB, form: url.Values{"content": {content}, "uuid": {uuidA}, "signature": {"%%%"}}, status: 403},
		{name: "empty signature", remote: fromB, prefix: viaB, form: url.Values{"content": {content}, "uuid": {uuidA}, "signature": {""}}, status: 403},
		{name: "missing content", remote: fromB, prefix: viaB, form: url.Values{"uuid": {uuidA}, "signature": {sigA}}, status: 400},
		{name: "missing signature", remote: fromB, prefix: viaB, form: url.Values{"content": {content}, "uuid": {uuidA}}, status: 400},
		{name: "missing uuid", remote: fromB, prefix: viaB, form: url.Values{"content": {content}, "signature": {sigA}}, status: 400},
		{name: "bad uuid", remote: fromB, prefix: viaB, form: url.Values{"content": {content}, "uuid": {"nope"}, "signature": {sigA}}, status: 400},
		{name: "unidentified caller", remote: fromOther, form: url.Values{"content": {content}, "uuid": {uuidA}, "signature": {sigA}}, status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, s, tt.remote, "POST", tt.prefix+"/acMetadata/v1/pod/hmac/verify", tt.form)
			if body := readBody(t, resp); resp.StatusCode != tt.status {
				t.Fatalf("verify: status %d (%q), want %d", resp.StatusCode, body, tt.status)
			}
		})
	}

	t.Run("signatures die with the pod", func(t *testing.T) {
		if err := s.Unregister(uuidA); err != nil {
			t.Fatal(err)
		}
		resp := do(t, s, fromB, "POST", viaB+"/acMetadata/v1/pod/hmac/verify", url.Values{"content": {content}, "uuid": {uuidA}, "signature": {sigA}})
		if resp.StatusCode != 403 {
			t.Fatalf("verify after unregister: status %d, want 403", resp.StatusCode)
		}
	})
}

func TestHMACRequests(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		name   string
		method string
		path   string
		ctype  string
		body   string
		status int
	}{
		{name: "sign GET", method: "GET", path: "/acMetadata/v1/pod/hmac/sign", status: 405},
		{name: "verify GET", method: "GET", path: "/acMetadata/v1/pod/hmac/verify", status: 405},
		{name: "sign no form", method: "POST", path: "/acMetadata/v1/pod/hmac/sign", ctype: "text/plain", body: "content=x", status: 400},
		{name: "sign content in query only", method: "POST", path: "/acMetadata/v1/pod/hmac/sign?content=x", ctype: "application/x-www-form-urlencoded", status: 400},
		{name: "sign empty content", method: "POST", path: "/acMetadata/v1/pod/hmac/sign", ctype: "application/x-www-form-urlencoded", body: "content=", status: 200},
		{name: "sign too large", method: "POST", path: "/acMetadata/v1/pod/hmac/sign", ctype: "application/x-www-form-urlencoded", body: "content=" + strings.Repeat("x", maxFormBody), status: 400},
		{name: "hmac unknown", method: "POST", path: "/acMetadata/v1/pod/hmac/nope", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://mds"+tt.path, strings.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			req.RemoteAddr = fromA
			rec := httptest.NewRecorder()
			(&metadataHandler{reg: s.reg, log: s.log}).ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d (%q), want %d", rec.Code, rec.Body.String(), tt.status)
			}
		})
	}

	t.Run("multipart form", func(t *testing.T) {
		var buf strings.Builder
		mw := multipart.NewWriter(&buf)
		if err := mw.WriteField("content", "hello"); err != nil {
			t.Fatal(err)
		}
		_ = mw.Close()
		req := httptest.NewRequest("POST", "http://mds/acMetadata/v1/pod/hmac/sign", strings.NewReader(buf.String()))
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.RemoteAddr = fromA
		rec := httptest.NewRecorder()
		(&metadataHandler{reg: s.reg, log: s.log}).ServeHTTP(rec, req)
		if want := sign(t, s, fromA, "", "hello"); rec.Code != 200 || rec.Body.String() != want {
			t.Fatalf("multipart sign = %d %q, want 200 %q", rec.Code, rec.Body.String(), want)
		}
	})
}

func TestSplitToken(t *testing.T) {
	tests := []struct {
		name, path, tok, rest string
		ok                    bool
	}{
		{name: "bare", path: "/acMetadata/v1/pod/uuid", rest: "/acMetadata/v1/pod/uuid", ok: true},
		{name: "token", path: "/abc/acMetadata/v1/pod/uuid", tok: "abc", rest: "/acMetadata/v1/pod/uuid", ok: true},
		{name: "two segments", path: "/a/b/acMetadata/v1", ok: false},
		{name: "empty token", path: "//acMetadata/v1", ok: false},
		{name: "root", path: "/", ok: false},
		{name: "token only", path: "/abc", ok: false},
		{name: "relative", path: "abc/acMetadata/", ok: false},
		{name: "empty", path: "", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, rest, ok := splitToken(tt.path)
			if tok != tt.tok || rest != tt.rest || ok != tt.ok {
				t.Fatalf("splitToken(%q) = %q, %q, %v; want %q, %q, %v", tt.path, tok, rest, ok, tt.tok, tt.rest, tt.ok)
			}
		})
	}
}
