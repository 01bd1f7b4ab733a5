package mds

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"

	"github.com/google/uuid"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mdsclient"
)

// The registration API (mdsclient.PathPing, mdsclient.PathPods) over the
// Unix socket: every request from a peer that is neither root nor the
// service's own user is answered 403. An error's body is its message as
// text; the status is its errdefs class (mdsclient.StatusOf).
const (
	pathPing = mdsclient.PathPing
	pathPods = mdsclient.PathPods

	// maxRegistration bounds a registration body: a pod manifest and an
	// image manifest per app.
	maxRegistration = 64 << 20
)

type peerKey struct{}

// peer is what the connection context records about the client.
type peer struct {
	uid uint32
	err error
}

// withPeer is the http.Server ConnContext of the registration API.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	uid, err := peerUID(c)
	return context.WithValue(ctx, peerKey{}, peer{uid: uid, err: err})
}

// regHandler serves the registration API.
type regHandler struct {
	srv *Server
	mux *http.ServeMux
}

func newRegHandler(s *Server) *regHandler {
	h := &regHandler{srv: s, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET "+pathPing, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	h.mux.HandleFunc("POST "+pathPods, h.register)
	h.mux.HandleFunc("DELETE "+pathPods+"/{uuid}", h.unregister)
	return h
}

func (h *regHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := r.Context().Value(peerKey{}).(peer)
	if !ok || p.err != nil || !h.srv.allowed(p.uid) {
		h.srv.log.WarnContext(r.Context(), "registration request refused", "uid", p.uid, "err", p.err)
		http.Error(w, "registration is for root only", http.StatusForbidden)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *regHandler) register(w http.ResponseWriter, r *http.Request) {
	var reg Registration
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRegistration))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&reg); err != nil {
		writeError(w, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("decode registration: %w", err)))
		return
	}
	if err := h.srv.Register(reg); err != nil {
		writeError(w, err)
		return
	}
	body, err := json.Marshal(mdsclient.Registered{MetadataPort: int(h.srv.port.Load())})
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", contentJSON)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}

func (h *regHandler) unregister(w http.ResponseWriter, r *http.Request) {
	if err := h.srv.Unregister(r.PathValue("uuid")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeError(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), mdsclient.StatusOf(err))
}

// Register adds a pod to the running service, as the registration API does.
// The service makes the pod's HMAC key. A pod whose UUID, token or any
// address is already registered is refused (errdefs.ErrAlreadyExists); an
// invalid registration is errdefs.ErrInvalidArgument.
func (s *Server) Register(r Registration) error {
	p, err := s.reg.add(r)
	if err != nil {
		return err
	}
	s.log.Info("pod registered", "pod", p.uuid, "apps", len(p.apps), "token", p.hasToken, "ips", fmt.Sprint(p.ips))
	return nil
}

// Unregister removes a pod; its apps are answered 403 from then on, and its
// signatures no longer verify. An unknown pod is errdefs.ErrNotFound.
func (s *Server) Unregister(podUUID string) error {
	u, err := uuid.Parse(podUUID)
	if err != nil {
		return errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("pod uuid %q: %w", podUUID, err))
	}
	if err := s.reg.remove(u.String()); err != nil {
		return err
	}
	s.log.Info("pod unregistered", "pod", u.String())
	return nil
}
