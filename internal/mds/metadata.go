package mds

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/google/uuid"
)

// Paths and media types of the metadata API (ace.md).
const (
	metadataPrefix = "/acMetadata/"
	v1Prefix       = "/acMetadata/v1/"

	contentJSON  = "application/json"
	contentASCII = "text/plain; charset=us-ascii"
	contentUTF8  = "text/plain; charset=utf-8"

	// maxFormBody bounds the form of an hmac request.
	maxFormBody = 1 << 20
)

// metadataHandler serves the metadata API to the pods. Every request is
// first tied to the one pod that sent it (registry.identify); a request that
// fits no pod gets 403 for any path of the form [/<token>]/acMetadata/…,
// so that the API tells an unidentified caller nothing. Paths of any other
// form are 404 for everyone.
type metadataHandler struct {
	reg *registry
	log *slog.Logger
}

func (h *metadataHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, rest, ok := splitToken(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	src, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		h.log.WarnContext(r.Context(), "metadata request from unparsable address", "remote", r.RemoteAddr)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	p := h.reg.identify(tok, src.Addr())
	if p == nil {
		// Neither the token nor the path is logged: a token is a secret.
		// Debug, not info: a hostile pod must not be able to flood the log.
		h.log.DebugContext(r.Context(), "metadata request from no registered pod", "remote", src.Addr().String(), "token", tok != "")
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	h.log.DebugContext(r.Context(), "metadata request", "pod", p.uuid, "method", r.Method, "path", rest)
	if !strings.HasPrefix(rest, v1Prefix) {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(strings.TrimPrefix(rest, v1Prefix), "/")
	switch parts[0] {
	case "pod":
		h.servePod(w, r, p, parts[1:])
	case "apps":
		if len(parts) < 3 || parts[1] == "" {
			http.NotFound(w, r)
			return
		}
		a := p.apps[parts[1]]
		if a == nil {
			http.Error(w, "no such app in this pod", http.StatusNotFound)
			return
		}
		h.serveApp(w, r, a, parts[2:])
	default:
		http.NotFound(w, r)
	}
}

// splitToken splits a request path into its token (empty if there is none)
// and the rest, which starts with /acMetadata/. ok is false for a path of
// neither form.
func splitToken(path string) (tok, rest string, ok bool) {
	if strings.HasPrefix(path, metadataPrefix) {
		return "", path, true
	}
	tok, rest, found := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !found || tok == "" || !strings.HasPrefix(path, "/") {
		return "", "", false
	}
	rest = "/" + rest
	if !strings.HasPrefix(rest, metadataPrefix) {
		return "", "", false
	}
	return tok, rest, true
}

func (h *metadataHandler) servePod(w http.ResponseWriter, r *http.Request, p *pod, parts []string) {
	switch {
	case len(parts) >= 1 && parts[0] == "annotations":
		if get(w, r) {
			serveAnnotations(w, p.annotations, parts[1:])
		}
	case len(parts) == 1 && parts[0] == "manifest":
		if get(w, r) {
			write(w, contentJSON, p.manifest)
		}
	case len(parts) == 1 && parts[0] == "uuid":
		if get(w, r) {
			write(w, contentASCII, []byte(p.uuid))
		}
	case len(parts) == 2 && parts[0] == "hmac" && parts[1] == "sign":
		if post(w, r) {
			h.sign(w, r, p)
		}
	case len(parts) == 2 && parts[0] == "hmac" && parts[1] == "verify":
		if post(w, r) {
			h.verify(w, r)
		}
	default:
		http.NotFound(w, r)
	}
}

func (h *metadataHandler) serveApp(w http.ResponseWriter, r *http.Request, a *app, parts []string) {
	switch {
	case parts[0] == "annotations":
		if get(w, r) {
			serveAnnotations(w, a.annotations, parts[1:])
		}
	case len(parts) == 2 && parts[0] == "image" && parts[1] == "manifest":
		if get(w, r) {
			write(w, contentJSON, a.imageManifest)
		}
	case len(parts) == 2 && parts[0] == "image" && parts[1] == "id":
		if get(w, r) {
			write(w, contentASCII, []byte(a.imageID))
		}
	default:
		http.NotFound(w, r)
	}
}

// serveAnnotations answers annotations and annotations/ with the JSON list
// (ace.md), and annotations/<name> with the value of one annotation as
// text. Annotation names may hold slashes, hence the join.
func serveAnnotations(w http.ResponseWriter, as types.Annotations, name []string) {
	n := strings.Join(name, "/")
	if n == "" {
		b, err := json.Marshal(as)
		if err != nil {
			http.Error(w, "encode annotations", http.StatusInternalServerError)
			return
		}
		write(w, contentJSON, b)
		return
	}
	for _, a := range as {
		if a.Name.String() == n {
			write(w, contentUTF8, []byte(a.Value))
			return
		}
	}
	http.Error(w, "no such annotation", http.StatusNotFound)
}

// sign answers hmac/sign: the base64 HMAC-SHA512 of the form's content under
// the calling pod's key.
func (h *metadataHandler) sign(w http.ResponseWriter, r *http.Request, p *pod) {
	form, ok := parseForm(w, r, "content")
	if !ok {
		return
	}
	write(w, contentASCII, []byte(base64.StdEncoding.EncodeToString(mac(p.key, form["content"]))))
}

// verify answers hmac/verify: 200 if signature is the HMAC of content under
// the key of pod uuid, 403 otherwise, also when that pod is not (or no
// longer) registered or the signature is not base64.
func (h *metadataHandler) verify(w http.ResponseWriter, r *http.Request) {
	form, ok := parseForm(w, r, "content", "uuid", "signature")
	if !ok {
		return
	}
	u, err := uuid.Parse(form["uuid"])
	if err != nil {
		http.Error(w, "uuid is not a UUID", http.StatusBadRequest)
		return
	}
	sig, err := base64.StdEncoding.DecodeString(form["signature"])
	signer := h.reg.get(u.String())
	if err != nil || signer == nil || !hmac.Equal(sig, mac(signer.key, form["content"])) {
		http.Error(w, "signature does not verify", http.StatusForbidden)
		return
	}
	write(w, contentASCII, []byte("ok"))
}

func mac(key []byte, content string) []byte {
	m := hmac.New(sha512.New, key)
	_, _ = io.WriteString(m, content) // a hash.Hash never returns an error
	return m.Sum(nil)
}

// parseForm reads a POSTed form (urlencoded or multipart) holding each of
// fields, and answers 400 if it cannot. Fields of the URL query are ignored.
func parseForm(w http.ResponseWriter, r *http.Request, fields ...string) (map[string]string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseMultipartForm(maxFormBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		http.Error(w, "cannot parse form: "+err.Error(), http.StatusBadRequest)
		return nil, false
	}
	out := make(map[string]string, len(fields))
	for _, f := range fields {
		v, ok := r.PostForm[f]
		if !ok {
			http.Error(w, "form has no "+f, http.StatusBadRequest)
			return nil, false
		}
		out[f] = v[0]
	}
	return out, true
}

// get admits GET and HEAD, and answers 405 to any other method.
func get(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// post admits POST only.
func post(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", "POST")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func write(w http.ResponseWriter, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body) // the client went away; nothing to do
}
