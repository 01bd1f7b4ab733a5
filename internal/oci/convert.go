package oci

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/oci/annotation"
)

// Annotations nscn writes into the appc manifest of an OCI image, named in
// package annotation (which prepare reads without linking this package).
const (
	AnnotationEntrypoint   = annotation.Entrypoint
	AnnotationCmd          = annotation.Cmd
	AnnotationReference    = annotation.Reference
	AnnotationDigest       = annotation.Digest
	AnnotationPrimaryGroup = annotation.PrimaryGroup
)

// reservedAnnotations are the annotation names appc gives a meaning (and a
// syntax) to, and nscn's own: image labels of these names are not copied.
var reservedAnnotations = map[string]bool{
	"authors": true, "created": true, "documentation": true, "homepage": true,
	AnnotationEntrypoint: true, AnnotationCmd: true, AnnotationReference: true,
	AnnotationDigest: true, AnnotationPrimaryGroup: true,
}

// App describes the image for Convert.
type App struct {
	// Name is the appc image name (see ImageName).
	Name string
	// Version becomes the version label when not empty (the tag).
	Version   string
	Reference string  // canonical reference, for the annotation
	Digest    v1.Hash // manifest digest
}

// ImageName turns a repository ("127.0.0.1:5000/team/app",
// "index.docker.io/library/busybox") into an appc image name: lower case,
// with every character appc does not allow (the port's colon) made a dash.
func ImageName(repo string) string {
	return sanitize(repo, "-._~/", '-')
}

// Convert turns an image config into the appc image manifest that nscn
// stores and runs: the config's Entrypoint and Cmd (kept apart in
// annotations as well), Env, User, WorkingDir, ExposedPorts (named
// "PORT-PROTO", e.g. 80-tcp, for --port), Volumes (mount points named
// "volume-" and the path), Labels (annotations) and the platform (os and
// arch labels, in appc's names). Dropped lists what could not be
// carried over (environment variables appc cannot name).
func Convert(cfg *v1.ConfigFile, a App) (m *schema.ImageManifest, dropped []string, err error) {
	name, err := types.NewACIdentifier(a.Name)
	if err != nil {
		return nil, nil, errdefs.InvalidArgument("image name %q: %v", a.Name, err)
	}
	m = schema.BlankImageManifest()
	m.Name = *name
	osName, arch := cfg.OS, cfg.Architecture
	if osName == "" {
		osName = "linux"
	}
	appcOS, appcArch, err := types.ToAppcOSArch(osName, arch, cfg.Variant)
	if err != nil {
		return nil, nil, errdefs.InvalidArgument("image %s: platform %s/%s: %v", a.Name, osName, arch, err)
	}
	if a.Version != "" {
		m.Labels = append(m.Labels, types.Label{Name: "version", Value: a.Version})
	}
	m.Labels = append(m.Labels, types.Label{Name: "os", Value: appcOS}, types.Label{Name: "arch", Value: appcArch})

	c := cfg.Config
	app := &types.App{
		Exec:             append(append(types.Exec{}, c.Entrypoint...), c.Cmd...),
		WorkingDirectory: c.WorkingDir,
		User:             "0",
		Group:            "0",
	}
	if app.WorkingDirectory == "" {
		app.WorkingDirectory = "/"
	}
	if !path.IsAbs(app.WorkingDirectory) {
		// Docker takes a relative WORKDIR from /.
		app.WorkingDirectory = path.Join("/", app.WorkingDirectory)
	}
	var groupFromPasswd bool
	if c.User != "" {
		user, group, hasGroup := strings.Cut(c.User, ":")
		if user != "" {
			app.User = user
		}
		switch {
		case hasGroup && group != "":
			app.Group = group
		case isDigits(user):
			// Docker: a numeric user without an entry runs with gid 0,
			// with one, its primary group.
			groupFromPasswd = true
		case user != "":
			groupFromPasswd = true
		}
	}
	for _, kv := range c.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !envName.MatchString(k) {
			dropped = append(dropped, "environment variable "+strconv.Quote(kv))
			continue
		}
		app.Environment.Set(k, v)
	}
	ports, err := convertPorts(c.ExposedPorts)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: %w", a.Name, err)
	}
	app.Ports = ports
	app.MountPoints = convertVolumes(c.Volumes)
	m.App = app

	setAnno := func(k, v string) { m.Annotations.Set(types.ACIdentifier(k), v) }
	entry, _ := json.Marshal(nonNil(c.Entrypoint))
	cmd, _ := json.Marshal(nonNil(c.Cmd))
	setAnno(AnnotationEntrypoint, string(entry))
	setAnno(AnnotationCmd, string(cmd))
	if a.Reference != "" {
		setAnno(AnnotationReference, a.Reference)
	}
	if a.Digest.Hex != "" {
		setAnno(AnnotationDigest, a.Digest.String())
	}
	if groupFromPasswd {
		setAnno(AnnotationPrimaryGroup, "true")
	}
	if !cfg.Created.IsZero() {
		setAnno("created", cfg.Created.UTC().Format(time.RFC3339))
	}
	keys := make([]string, 0, len(c.Labels))
	for k := range c.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ak := sanitize(k, "-._~/", '-')
		if ak == "" || reservedAnnotations[ak] {
			continue
		}
		if _, dup := m.Annotations.Get(ak); dup {
			continue // two labels that differ only in case or punctuation
		}
		setAnno(ak, c.Labels[k])
	}
	return m, dropped, nil
}

// envName is appc's rule for environment variable names.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9.-]*$`)

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// convertPorts names each exposed port "PORT-PROTO" (80-tcp, 53-udp),
// the name --port takes. A range (8000-8010/tcp) keeps its first port and
// a count.
func convertPorts(exposed map[string]struct{}) ([]types.Port, error) {
	specs := make([]string, 0, len(exposed))
	for s := range exposed {
		specs = append(specs, s)
	}
	sort.Strings(specs)
	var out []types.Port
	for _, s := range specs {
		num, proto, _ := strings.Cut(s, "/")
		if proto == "" {
			proto = "tcp"
		}
		proto = strings.ToLower(proto)
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, errdefs.InvalidArgument("exposed port %q: unknown protocol %q", s, proto)
		}
		first, last, isRange := strings.Cut(num, "-")
		lo, err := strconv.ParseUint(first, 10, 16)
		if err != nil || lo == 0 {
			return nil, errdefs.InvalidArgument("exposed port %q is not a port number", s)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(last, 10, 16); err != nil || hi < lo {
				return nil, errdefs.InvalidArgument("exposed port %q is not a port range", s)
			}
		}
		n, err := types.NewACName(fmt.Sprintf("%d-%s", lo, proto))
		if err != nil {
			return nil, errdefs.InvalidArgument("exposed port %q: %v", s, err)
		}
		out = append(out, types.Port{Name: *n, Protocol: proto, Port: uint(lo), Count: uint(hi - lo + 1)})
	}
	return out, nil
}

// convertVolumes makes a mount point of each volume, named "volume-" and
// its path with every other character made a dash (/var/lib/data:
// volume-var-lib-data), as docker2aci named them.
func convertVolumes(vols map[string]struct{}) []types.MountPoint {
	paths := make([]string, 0, len(vols))
	for p := range vols {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var out []types.MountPoint
	seen := map[types.ACName]bool{}
	for _, p := range paths {
		clean := path.Clean("/" + p)
		n := types.ACName(sanitize("volume-"+clean, "-", '-'))
		if clean == "/" || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, types.MountPoint{Name: n, Path: clean})
	}
	return out
}

// sanitize lowercases s and keeps its letters and digits, and the
// separators in seps between them; anything else becomes repl, and
// separators never start, end or repeat. It returns "" when nothing is
// left.
func sanitize(s, seps string, repl byte) string {
	var b strings.Builder
	lastAlnum := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteByte(c)
			lastAlnum = true
			continue
		}
		if !strings.ContainsRune(seps, rune(c)) {
			c = repl
		}
		if lastAlnum {
			b.WriteByte(c)
			lastAlnum = false
		}
	}
	return strings.TrimRight(b.String(), seps+string(repl))
}
