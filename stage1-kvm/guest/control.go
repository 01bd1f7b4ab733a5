package guest

import (
	"encoding/json"
	"path"
	"slices"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/sdmanager"
)

// The control port carries frames (WriteFrame, ReadFrame) from the host's
// run, stop and app entrypoints to the agent, one host connection at a
// time:
//
//	host                                    guest (agent)
//	  FrameHalt (no payload) ─────────────▶ SIGRTMIN+3 to the pod's
//	                                        systemd; no answer
//	  FrameControl: ControlRequest ───────▶ the pod's systemd
//	     (JSON)                             (package sdmanager), or a
//	                                        mount step of app/add or
//	                                        app/rm
//	                                   ◀── FrameControlReply:
//	                                        ControlReply (JSON), with the
//	                                        request's nonce
//
// A reply that no host read (its host went away) stays in the port until
// the next host reads it: the host skips replies whose nonce is not its
// own.
const (
	FrameHalt         = 'H'
	FrameControl      = 'C'
	FrameControlReply = 'c'
)

// The operations of a ControlRequest beyond sdmanager's (OpLoadState,
// OpActiveState, OpResetFailed, OpStart, OpStop, on an app's unit).
const (
	// OpBindEntries binds each entry of Dir onto itself in the guest, as
	// Init does for HostBindDir: the host paths app/add bound into the
	// shared root under an added app's bind directory become mounts of
	// their own, which the app helper's read-only seal of the root
	// leaves as they are.
	OpBindEntries = "bind-entries"
	// OpUnmount unmounts in the guest, lazily, everything at and below
	// each of Dirs: app/rm's step before the host takes its binds out of
	// the shared root.
	OpUnmount = "unmount"
)

// ControlRequest is one request of FrameControl.
type ControlRequest struct {
	Nonce string   `json:"nonce"`
	Op    string   `json:"op"`
	Unit  string   `json:"unit,omitempty"`
	Dirs  []string `json:"dirs,omitempty"`
}

// ControlReply answers a ControlRequest: the unit's state the operation
// asked for, or why it failed.
type ControlReply struct {
	Nonce string `json:"nonce"`
	State string `json:"state,omitempty"`
	Err   string `json:"err,omitempty"`
}

// appDirs are the guest directories OpBindEntries and OpUnmount may name:
// an added app's bind directory and its rootfs' directory.
var appDirs = []string{HostBindDir + "/app/", "/opt/stage2/"}

// ParseControlRequest decodes and checks a FrameControl payload: a known
// operation, a unit name that is an app's service (app-NAME.service, no
// slash), directories that are clean absolute paths below an app's
// directories. The host is the only writer of the port; the checks keep
// a confused host from reaching beyond an app's units and mounts.
func ParseControlRequest(p []byte) (ControlRequest, error) {
	var r ControlRequest
	if err := json.Unmarshal(p, &r); err != nil {
		return ControlRequest{}, errdefs.Newf(errdefs.ErrInvalidArgument, "control request: %w", err)
	}
	switch r.Op {
	case sdmanager.OpLoadState, sdmanager.OpActiveState, sdmanager.OpResetFailed, sdmanager.OpStart, sdmanager.OpStop:
		if !strings.HasPrefix(r.Unit, "app-") || !strings.HasSuffix(r.Unit, ".service") || strings.ContainsAny(r.Unit, "/\x00 ") || len(r.Unit) > 255 {
			return ControlRequest{}, errdefs.InvalidArgument("control request %s: %q is not an app's service", r.Op, r.Unit)
		}
		if len(r.Dirs) != 0 {
			return ControlRequest{}, errdefs.InvalidArgument("control request %s takes no directory", r.Op)
		}
	case OpBindEntries, OpUnmount:
		if r.Unit != "" || len(r.Dirs) == 0 || (r.Op == OpBindEntries && len(r.Dirs) != 1) {
			return ControlRequest{}, errdefs.InvalidArgument("control request %s: a unit or the wrong number of directories", r.Op)
		}
		for _, d := range r.Dirs {
			ok := path.Clean(d) == d && slices.ContainsFunc(appDirs, func(pre string) bool {
				return strings.HasPrefix(d, pre) && len(d) > len(pre)
			})
			if !ok {
				return ControlRequest{}, errdefs.InvalidArgument("control request %s: %q is not an app's directory", r.Op, d)
			}
		}
	default:
		return ControlRequest{}, errdefs.InvalidArgument("unknown control request %q", r.Op)
	}
	return r, nil
}
