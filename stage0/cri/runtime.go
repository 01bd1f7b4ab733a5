package cri

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// The annotations that make a pod a CRI sandbox and an app a CRI
// container: the CRI's metadata, as JSON, kept in the pod manifest, so
// that the pods on disk are the whole state.
const (
	SandboxAnnotation   = "nscn.io/cri/sandbox"
	ContainerAnnotation = "nscn.io/cri/container"
)

// sandboxReadyTimeout bounds the wait for a new sandbox to be ready: a
// kvm one boots a VM, under TCG in seconds.
const sandboxReadyTimeout = 2 * time.Minute

// sandboxMeta is a sandbox's CRI metadata.
type sandboxMeta struct {
	Name           string            `json:"name"`
	UID            string            `json:"uid"`
	Namespace      string            `json:"namespace"`
	Attempt        uint32            `json:"attempt"`
	Labels         map[string]string `json:"labels,omitempty"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	LogDirectory   string            `json:"logDirectory,omitempty"`
	RuntimeHandler string            `json:"runtimeHandler,omitempty"`
	HostNetwork    bool              `json:"hostNetwork,omitempty"`
	HostIPC        bool              `json:"hostIPC,omitempty"`
	HostPID        bool              `json:"hostPID,omitempty"`
	CreatedAt      int64             `json:"createdAt"`
}

// containerMeta is a container's CRI metadata.
type containerMeta struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Attempt     uint32            `json:"attempt"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Image       string            `json:"image"`    // as the client named it
	ImageRef    string            `json:"imageRef"` // the image ID
	LogPath     string            `json:"logPath,omitempty"`
	// Stdin says the container was created with a standard input
	// (stage1abi.AnnotationAppStdin), which Attach writes to.
	Stdin bool `json:"stdin,omitempty"`
	// StdinOnce (with Stdin): the app's stdin ends when the first
	// attach with input does (crilog.Config.StdinOnce).
	StdinOnce bool `json:"stdinOnce,omitempty"`
	// TTY says the container was created with a terminal
	// (stage1abi.AnnotationAppTTY): Attach with tty resizes it.
	TTY       bool  `json:"tty,omitempty"`
	CreatedAt int64 `json:"createdAt"`
}

// sandboxID is the CRI ID of pod uuid: its 32 hex digits.
func sandboxID(uuid string) string { return strings.ReplaceAll(uuid, "-", "") }

// podUUID is the pod UUID of a sandbox ID (or the first 32 hex digits of
// a container ID), or "" when id is not one.
func podUUID(id string) string {
	if len(id) < 32 {
		return ""
	}
	h := id[:32]
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return ""
	}
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// appName is the app of a container ID: "c" and the 20 hex digits after
// the sandbox's 32.
func appName(id string) string {
	if len(id) != 64 || podUUID(id) == "" {
		return ""
	}
	if _, err := hex.DecodeString(id[32:]); err != nil {
		return ""
	}
	return "c" + id[32:52]
}

// nscn runs the nscn command line args (after the global flags the server
// was started with); a failure's error carries its stderr.
func (s *Server) nscn(ctx context.Context, args ...string) error {
	all := append(append([]string(nil), s.nscnArgs[1:]...), args...)
	cmd := exec.CommandContext(ctx, s.nscnArgs[0], all...) //nolint:gosec // G204: nscn itself, with arguments the server built
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nscn %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return nil
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}
