package prepare

import (
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate/caps"
)

// MaxAppName bounds the length of an app's name. The name becomes the
// app's systemd unit (app-NAME.service, at most 255 bytes), the names of
// its files in the pod directory and a column of every listing.
const MaxAppName = 128

// CheckAppName refuses an app name that is not an appc AC name (lowercase
// letters, digits and single dashes inside) or is longer than MaxAppName,
// as errdefs.ErrInvalidArgument.
func CheckAppName(name string) error {
	if len(name) > MaxAppName {
		return errdefs.InvalidArgument("app name %q is %d characters long, over the limit of %d", clip(name), len(name), MaxAppName)
	}
	if _, err := types.NewACName(name); err != nil {
		return errdefs.InvalidArgument("app name %q is not a valid appc name (lowercase letters, digits and dashes, starting and ending with a letter or digit)", name)
	}
	return nil
}

// clip shortens s for a message.
func clip(s string) string {
	const keep = 24
	if len(s) <= keep {
		return s
	}
	return s[:keep] + "..."
}

// CheckVolume checks what the appc schema leaves to the runtime, so that a
// volume is refused before any pod exists rather than by the stage1: an
// empty volume's mode must be an octal permission up to 07777 and its uid
// and gid IDs the kernel takes; a host volume's source must be absolute.
// No field may hold a control character. Errors are
// errdefs.ErrInvalidArgument.
func CheckVolume(v types.Volume) error {
	if _, err := types.NewACName(v.Name.String()); err != nil {
		return errdefs.InvalidArgument("volume name %q is not a valid appc name", v.Name)
	}
	switch v.Kind {
	case "host":
		if !strings.HasPrefix(v.Source, "/") {
			return errdefs.InvalidArgument("volume %s: source %q is not an absolute path", v.Name, v.Source)
		}
		if strings.ContainsFunc(v.Source, unicode.IsControl) {
			return errdefs.InvalidArgument("volume %s: source %q holds a control character", v.Name, v.Source)
		}
		if v.Mode != nil || v.UID != nil || v.GID != nil {
			return errdefs.InvalidArgument("volume %s: mode, uid and gid are for kind=empty", v.Name)
		}
	case "empty":
		if v.Source != "" {
			return errdefs.InvalidArgument("volume %s: source is for kind=host", v.Name)
		}
		if v.Mode != nil {
			if _, err := ParseMode(*v.Mode); err != nil {
				return errdefs.InvalidArgument("volume %s: %w", v.Name, err)
			}
		}
		for _, id := range []struct {
			key string
			v   *int
		}{{"uid", v.UID}, {"gid", v.GID}} {
			if id.v != nil && (*id.v < 0 || *id.v >= math.MaxUint32) {
				return errdefs.InvalidArgument("volume %s: %s %d is not a user or group ID (0 to %d)", v.Name, id.key, *id.v, uint32(math.MaxUint32-1))
			}
		}
	default:
		return errdefs.InvalidArgument("volume %s: kind %q is neither host nor empty", v.Name, v.Kind)
	}
	return nil
}

// ParseMode parses an empty volume's mode: octal digits (0755, 1777) for
// a permission no larger than 07777.
func ParseMode(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || s == "" || s[0] == '+' || n > 0o7777 {
		return 0, errdefs.InvalidArgument("mode %q is not an octal permission from 0 to 7777", s)
	}
	return uint32(n), nil
}

// Ways to consent to capabilities beyond appc's default set, for
// capabilityConsent: each takes the bounding set to grant.
const (
	grantWithFlag      = "to grant them, give --caps-retain=%s after the image"
	grantInPodManifest = "to grant them, give the app in the pod manifest with an os/linux/capabilities-retain-set of %s"
)

// capabilityConsent refuses to run the app of image manifest m under the
// name app when its capability isolators grant it capabilities beyond
// appc's default set (caps.Default) and the operator has not consented
// (Documentation/isolators.md, "Capabilities beyond the default set").
// The refusal is errdefs.ErrInvalidArgument and names the capabilities
// and, with grant, how to consent.
func capabilityConsent(app string, m *schema.ImageManifest, consented bool, grant string) error {
	if consented || m.App == nil {
		return nil
	}
	bounding, _, err := caps.FromIsolators(m.App.Isolators)
	if err != nil {
		return errdefs.InvalidArgument("app %s: image %s: %w", app, m.Name, err)
	}
	extra := bounding &^ caps.Default
	if extra == 0 {
		return nil
	}
	return errdefs.InvalidArgument("app %s: image %s asks for %s beyond appc's default capabilities; "+grant, app, m.Name, extra, bounding)
}

// hasCapabilityIsolator reports whether isos hold a capability isolator.
func hasCapabilityIsolator(isos types.Isolators) bool {
	for _, iso := range isos {
		if iso.Name == types.LinuxCapabilitiesRetainSetName || iso.Name == types.LinuxCapabilitiesRevokeSetName {
			return true
		}
	}
	return false
}

// validEnvName reports whether name is an environment variable name the
// appc schema takes: a letter or underscore, then letters, digits,
// underscores, dots and dashes.
func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '.' || r == '-'):
		default:
			return false
		}
	}
	return true
}

// CheckEnvName refuses an environment variable name the appc schema does
// not take, as errdefs.ErrInvalidArgument.
func CheckEnvName(name string) error {
	if !validEnvName(name) {
		return errdefs.InvalidArgument("environment variable name %q is not valid (a letter or _, then letters, digits, _, . or -)", name)
	}
	return nil
}

// CheckOSArch refuses, as rkt did, an app image that does not say it runs
// here: its os and arch labels must both be present and name the host's
// (appc's names: linux, amd64, aarch64, …). Running a foreign binary ends
// in an opaque "exec format error" inside the pod; refusing it up front
// names the image and the label. Errors are errdefs.ErrInvalidArgument.
func CheckOSArch(m *schema.ImageManifest, goos, goarch string) error {
	wantOS, wantArch, err := types.ToAppcOSArch(goos, goarch, "")
	if err != nil {
		return errdefs.InvalidArgument("image %s: this host (%s/%s) has no appc os/arch: %v", m.Name, goos, goarch, err)
	}
	imgOS, hasOS := m.Labels.Get("os")
	if !hasOS {
		return errdefs.InvalidArgument("image %s: missing os label in the image manifest (want %q)", m.Name, wantOS)
	}
	arch, hasArch := m.Labels.Get("arch")
	if !hasArch {
		return errdefs.InvalidArgument("image %s: missing arch label in the image manifest (want %q)", m.Name, wantArch)
	}
	if imgOS != wantOS {
		return errdefs.InvalidArgument("image %s: bad os %q (this host runs %q)", m.Name, imgOS, wantOS)
	}
	if arch != wantArch {
		return errdefs.InvalidArgument("image %s: bad arch %q (this host runs %q)", m.Name, arch, wantArch)
	}
	return nil
}
