package fly

import (
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

// SingleApp returns the pod's only app: fly runs exactly one app per pod.
// The app must carry its effective app definition (stage0 merges the
// image's app with the user's overrides into the pod manifest).
func SingleApp(pm *schema.PodManifest) (*schema.RuntimeApp, error) {
	switch len(pm.Apps) {
	case 0:
		return nil, errdefs.InvalidArgument("pod manifest has no app")
	case 1:
	default:
		names := make([]string, len(pm.Apps))
		for i, a := range pm.Apps {
			names[i] = a.Name.String()
		}
		return nil, errdefs.Newf(errdefs.ErrNotImplemented,
			"fly runs exactly one app per pod, this pod has %d (%s)", len(pm.Apps), strings.Join(names, ", "))
	}
	ra := &pm.Apps[0]
	if ra.App == nil {
		return nil, errdefs.InvalidArgument("app %q in the pod manifest has no app definition", ra.Name)
	}
	return ra, nil
}

// AppByName returns the pod's app called name, checking that it is the
// pod's only app.
func AppByName(pm *schema.PodManifest, name string) (*schema.RuntimeApp, error) {
	ra, err := SingleApp(pm)
	if err != nil {
		return nil, err
	}
	if n, err := types.NewACName(name); err != nil || !ra.Name.Equals(*n) {
		return nil, errdefs.NotFound("pod has no app %q (its app is %q)", name, ra.Name)
	}
	return ra, nil
}
