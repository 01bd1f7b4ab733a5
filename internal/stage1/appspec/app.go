package appspec

import (
	"path"
	"strings"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Event handler names (spec/aci.md, "eventHandlers").
const (
	EventPreStart = "pre-start"
	EventPostStop = "post-stop"
)

// AppSpec is everything the pod thread needs to start the app and its
// event handlers, computed from the pod manifest before anything runs.
// Credentials are not resolved here: they need the mounted rootfs.
type AppSpec struct {
	Name              string   `json:"name"`
	Exec              []string `json:"exec"`
	Env               []string `json:"env"`
	User              string   `json:"user"`
	Group             string   `json:"group"`
	SupplementaryGIDs []int    `json:"supplementaryGIDs,omitempty"`
	WorkingDir        string   `json:"workingDir"`
	PreStart          []string `json:"preStart,omitempty"`
	PostStop          []string `json:"postStop,omitempty"`
}

// NewAppSpec validates the runtime app and computes its AppSpec. The
// working directory defaults to "/".
func NewAppSpec(ra *schema.RuntimeApp, opts EnvOptions) (AppSpec, error) {
	app := ra.App
	if app == nil {
		return AppSpec{}, errdefs.InvalidArgument("app %q has no app definition", ra.Name)
	}
	s := AppSpec{
		Name:              ra.Name.String(),
		Exec:              app.Exec,
		Env:               Environ(ra.Name.String(), app, opts),
		User:              app.User,
		Group:             app.Group,
		SupplementaryGIDs: app.SupplementaryGIDs,
		WorkingDir:        app.WorkingDirectory,
	}
	if len(s.Exec) == 0 || s.Exec[0] == "" {
		return AppSpec{}, errdefs.InvalidArgument("app %q has no exec", ra.Name)
	}
	if s.WorkingDir == "" {
		s.WorkingDir = "/"
	}
	if !path.IsAbs(s.WorkingDir) {
		return AppSpec{}, errdefs.InvalidArgument("app %q: working directory %q is not absolute", ra.Name, s.WorkingDir)
	}
	s.WorkingDir = path.Clean(s.WorkingDir)
	for _, h := range app.EventHandlers {
		if len(h.Exec) == 0 || h.Exec[0] == "" {
			return AppSpec{}, errdefs.InvalidArgument("app %q: %s event handler has no exec", ra.Name, h.Name)
		}
		switch h.Name {
		case EventPreStart:
			s.PreStart = h.Exec
		case EventPostStop:
			s.PostStop = h.Exec
		default:
			return AppSpec{}, errdefs.InvalidArgument("app %q: unknown event handler %q", ra.Name, h.Name)
		}
	}
	for _, list := range [][]string{s.Exec, s.Env, s.PreStart, s.PostStop} {
		for _, v := range list {
			if strings.ContainsRune(v, 0) {
				return AppSpec{}, errdefs.InvalidArgument("app %q: argument or environment value %q contains a NUL byte", ra.Name, v)
			}
		}
	}
	return s, nil
}
