package cri

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/appc/spec/schema/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/isolate/caps"
	"github.com/nosecone/nscn/internal/isolate/seccomp"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/prepare"
)

// The deprecated seccomp_profile_path values (CRI before security
// profiles), still sent by older kubelets.
const (
	seccompPathRuntimeDefault = "runtime/default"
	seccompPathDockerDefault  = "docker/default"
	seccompPathUnconfined     = "unconfined"
	seccompPathLocalhost      = "localhost/"
)

// applySecurity maps a container's linux.security_context onto the app:
// the user and groups, the capabilities, privileged, no_new_privs, the
// seccomp profile and a read-only rootfs, as appc isolators that the
// stage1 enforces for the app and for every process entered into it
// (ExecSync). sandboxPrivileged is the sandbox's own privileged flag: a
// privileged container needs a privileged sandbox, as in the kubelet's
// model. What nscn cannot honour is refused, never ignored.
func applySecurity(sc *runtimeapi.LinuxContainerSecurityContext, sandboxPrivileged bool, app *prepare.App) error {
	switch {
	case sc.GetRunAsUser() != nil:
		app.User = fmt.Sprint(sc.GetRunAsUser().GetValue())
	case sc.GetRunAsUsername() != "":
		app.User = sc.GetRunAsUsername()
	}
	if sc.GetRunAsGroup() != nil {
		if app.User == "" {
			return errdefs.InvalidArgument("run_as_group needs run_as_user or run_as_username: the image's user has its own group")
		}
		g := sc.GetRunAsGroup().GetValue()
		if g < 0 || g > math.MaxUint32-1 {
			return errdefs.InvalidArgument("run_as_group %d is not a group ID", g)
		}
		app.Group = fmt.Sprint(g)
	}
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > math.MaxUint32-1 {
			return errdefs.InvalidArgument("supplemental group %d is not a group ID", g)
		}
		app.SupplementaryGIDs = append(app.SupplementaryGIDs, int(g))
	}
	if p := sc.GetSupplementalGroupsPolicy(); p != runtimeapi.SupplementalGroupsPolicy_Merge {
		return errdefs.Newf(errdefs.ErrNotImplemented, "supplemental groups policy %s is not supported (nscn merges the image's groups)", p)
	}
	app.ReadOnlyRootfs = sc.GetReadonlyRootfs()
	if len(sc.GetMaskedPaths()) > 0 || len(sc.GetReadonlyPaths()) > 0 {
		// On top of nscn's own restricted /proc and /sys paths; the
		// stage1 masks and makes read-only in the app's filesystem.
		v, err := json.Marshal(isolate.Paths{Masked: sc.GetMaskedPaths(), ReadOnly: sc.GetReadonlyPaths()})
		if err != nil {
			return err
		}
		if _, err := isolate.ParseAppPaths(string(v)); err != nil {
			return err
		}
		app.Annotations = append(app.Annotations, types.Annotation{Name: stage1abi.AnnotationAppPaths, Value: string(v)})
	}
	if sc.GetApparmor().GetProfileType() == runtimeapi.SecurityProfile_Localhost {
		return errdefs.Newf(errdefs.ErrNotImplemented, "AppArmor profiles are not supported: nscn does not confine apps with AppArmor")
	}
	if sc.GetSelinuxOptions() != nil && (sc.GetSelinuxOptions().GetType() != "" || sc.GetSelinuxOptions().GetLevel() != "") {
		return errdefs.Newf(errdefs.ErrNotImplemented, "SELinux options are not supported: nscn does not label apps")
	}
	if ns := sc.GetNamespaceOptions(); ns != nil {
		if ns.GetTargetId() != "" || ns.GetPid() == runtimeapi.NamespaceMode_TARGET {
			return errdefs.Newf(errdefs.ErrNotImplemented, "a target PID namespace is not supported")
		}
		if ns.GetUsernsOptions() != nil && ns.GetUsernsOptions().GetMode() != runtimeapi.NamespaceMode_NODE {
			return errdefs.Newf(errdefs.ErrNotImplemented, "user namespaces are not supported by the CRI server yet")
		}
		applyPIDMode(ns, app)
	}

	privileged := sc.GetPrivileged()
	if privileged && !sandboxPrivileged {
		return errdefs.InvalidArgument("a privileged container needs a privileged sandbox")
	}
	if privileged {
		// Every capability and no seccomp filter: the CRI client's
		// decision, as --caps-retain is the operator's
		// (Documentation/security.md, "The CRI server").
		all, err := allCapabilities()
		if err != nil {
			return err
		}
		iso, err := capsRetain(all)
		if err != nil {
			return err
		}
		app.Isolators = append(app.Isolators, *iso)
		s, err := types.NewLinuxSeccompRetainSet("", seccomp.All)
		if err != nil {
			return errdefs.With(errdefs.ErrInvalidArgument, err)
		}
		iso, err = s.AsIsolator()
		if err != nil {
			return errdefs.With(errdefs.ErrInvalidArgument, err)
		}
		app.Isolators = append(app.Isolators, *iso)
	} else {
		iso, err := capabilities(sc.GetCapabilities())
		if err != nil {
			return err
		}
		if iso != nil {
			app.Isolators = append(app.Isolators, *iso)
		}
		if iso, err = seccompProfile(sc); err != nil {
			return err
		}
		if iso != nil {
			app.Isolators = append(app.Isolators, *iso)
		}
	}
	if sc.GetNoNewPrivs() {
		// appc has no constructor for this one: its JSON form.
		var iso types.Isolator
		if err := iso.UnmarshalJSON([]byte(`{"name":"` + types.LinuxNoNewPrivilegesName + `","value":true}`)); err != nil {
			return errdefs.With(errdefs.ErrInvalidArgument, err)
		}
		app.Isolators = append(app.Isolators, iso)
	}
	return nil
}

// capabilities computes the app's capability isolator from the CRI's add
// and drop lists over the runtime's default set (appc's, which is
// Docker's), as containerd does: "ALL" in drop starts from none, "ALL" in
// add from every capability; then the named ones are added and dropped.
// Names come with or without CAP_. No isolator (nil) is the default set.
func capabilities(c *runtimeapi.Capability) (*types.Isolator, error) {
	if c == nil || len(c.GetAddCapabilities()) == 0 && len(c.GetDropCapabilities()) == 0 && len(c.GetAddAmbientCapabilities()) == 0 {
		return nil, nil
	}
	if len(c.GetAddAmbientCapabilities()) > 0 {
		return nil, errdefs.Newf(errdefs.ErrNotImplemented, "ambient capabilities are not supported (nscn gives a non-root app its retained capabilities as ambient ones)")
	}
	set := caps.Default
	add, addAll, err := capList(c.GetAddCapabilities())
	if err != nil {
		return nil, fmt.Errorf("add_capabilities: %w", err)
	}
	drop, dropAll, err := capList(c.GetDropCapabilities())
	if err != nil {
		return nil, fmt.Errorf("drop_capabilities: %w", err)
	}
	if dropAll {
		set = 0
	}
	if addAll {
		if set, err = allCapabilities(); err != nil {
			return nil, err
		}
	}
	return capsRetain((set | add) &^ drop)
}

// capList parses CRI capability names; "ALL" is reported apart.
func capList(names []string) (caps.Set, bool, error) {
	var s caps.Set
	all := false
	for _, n := range names {
		n = strings.ToUpper(strings.TrimSpace(n))
		if n == "ALL" {
			all = true
			continue
		}
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		c, err := caps.Parse(n)
		if err != nil {
			return 0, false, err
		}
		s = s.Add(c)
	}
	return s, all, nil
}

// capsRetain is the isolator that gives the app exactly set: a
// retain-set, or for the empty set a remove-set of the default one (appc
// refuses an empty retain-set).
func capsRetain(set caps.Set) (*types.Isolator, error) {
	if set == 0 {
		r, err := types.NewLinuxCapabilitiesRevokeSet(caps.Default.Names()...)
		if err != nil {
			return nil, errdefs.With(errdefs.ErrInvalidArgument, err)
		}
		return r.AsIsolator()
	}
	r, err := types.NewLinuxCapabilitiesRetainSet(set.Names()...)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, err)
	}
	return r.AsIsolator()
}

// seccompProfile maps the container's seccomp profile onto a seccomp
// isolator: RuntimeDefault is nscn's default filter (no isolator),
// Unconfined no filter, Localhost the OCI profile in the file it names
// (seccompFromOCI). No profile at all is Unconfined, as the CRI says
// (the kubelet sends Unconfined or RuntimeDefault explicitly).
func seccompProfile(sc *runtimeapi.LinuxContainerSecurityContext) (*types.Isolator, error) {
	typ, path := runtimeapi.SecurityProfile_Unconfined, ""
	switch p := sc.GetSeccomp(); {
	case p != nil:
		typ, path = p.GetProfileType(), p.GetLocalhostRef()
	case sc.GetSeccompProfilePath() != "": //nolint:staticcheck // SA1019: kubelets before 1.26 send only this
		switch v := sc.GetSeccompProfilePath(); { //nolint:staticcheck // SA1019: as above
		case v == seccompPathRuntimeDefault || v == seccompPathDockerDefault:
			typ = runtimeapi.SecurityProfile_RuntimeDefault
		case v == seccompPathUnconfined:
		case strings.HasPrefix(v, seccompPathLocalhost):
			typ, path = runtimeapi.SecurityProfile_Localhost, strings.TrimPrefix(v, seccompPathLocalhost)
		default:
			return nil, errdefs.InvalidArgument("seccomp_profile_path %q: want runtime/default, unconfined or localhost/PATH", v)
		}
	}
	switch typ {
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return nil, nil
	case runtimeapi.SecurityProfile_Unconfined:
		s, err := types.NewLinuxSeccompRetainSet("", seccomp.All)
		if err != nil {
			return nil, errdefs.With(errdefs.ErrInvalidArgument, err)
		}
		return s.AsIsolator()
	case runtimeapi.SecurityProfile_Localhost:
		b, err := readProfile(path)
		if err != nil {
			return nil, err
		}
		iso, err := seccompFromOCI(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return iso, nil
	}
	return nil, errdefs.InvalidArgument("seccomp profile type %s is not known", typ)
}

// readProfile reads a Localhost profile: a host file the CRI client
// names (the kubelet's seccomp directory), read by the server as root.
func readProfile(path string) ([]byte, error) {
	if !filepath.IsAbs(path) {
		return nil, errdefs.InvalidArgument("seccomp localhost profile %q: the path must be absolute", path)
	}
	f, err := os.Open(path) //nolint:gosec // G304: a host path the CRI client (root's kubelet) chose, as for its mounts
	if err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("seccomp localhost profile: %w", err))
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxSeccompProfile+1))
	if err != nil {
		return nil, fmt.Errorf("seccomp localhost profile %s: %w", path, err)
	}
	return b, nil
}

// checkSandboxSecurity refuses what a sandbox's security context and
// sysctls ask that nscn cannot give a pod: a user namespace. The host's
// PID and IPC namespaces are sandboxPIDArgs' and sandboxIPCArgs',
// sysctls parseSysctls'. The rest of it (run_as_user, seccomp,
// privileged) concerns the pause container of other runtimes, which a
// sandbox here does not have: nscn's pod runs no app until a container
// is created.
func checkSandboxSecurity(cfg *runtimeapi.PodSandboxConfig) error {
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if ns.GetUsernsOptions() != nil && ns.GetUsernsOptions().GetMode() != runtimeapi.NamespaceMode_NODE {
		return errdefs.Newf(errdefs.ErrNotImplemented, "user namespaces are not supported by the CRI server yet")
	}
	return nil
}

// allCapabilities is "ALL": every capability the server's own bounding
// set holds, as containerd takes it. A runtime cannot give more (this
// host's root lacks CAP_SYS_RESOURCE, say), and a retain-set beyond it
// would fail the app's start.
func allCapabilities() (caps.Set, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read own capabilities: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("read own capabilities: CapBnd %q: %w", v, err)
			}
			return caps.Set(n) & caps.All(caps.Last), nil
		}
	}
	return 0, errors.New("read own capabilities: no CapBnd in /proc/self/status")
}
