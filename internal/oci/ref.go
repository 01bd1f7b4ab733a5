package oci

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Transport says where an image reference points.
type Transport string

// The transports, named as skopeo and podman name them.
const (
	Docker        Transport = "docker"         // a registry: docker://[REGISTRY/]REPO[:TAG|@DIGEST]
	Layout        Transport = "oci"            // an OCI image layout directory: oci:DIR[:REF]
	OCIArchive    Transport = "oci-archive"    // a tar of an OCI image layout: oci-archive:FILE[:REF]
	DockerArchive Transport = "docker-archive" // `docker save` output: docker-archive:FILE[:REF]
)

// Reference is a parsed image reference.
type Reference struct {
	Transport Transport
	// Name is the registry reference (Docker only), normalised with Docker
	// Hub's rules: "busybox" is index.docker.io/library/busybox:latest.
	Name name.Reference
	// Path is the layout directory or archive file (not Docker).
	Path string
	// Ref selects an image in a layout or archive: a name from the
	// layout's org.opencontainers.image.ref.name annotation or an archive's
	// repo tag. Empty when the source holds one image.
	Ref string
	// Digest pins the image: the manifest digest (Docker, oci:,
	// oci-archive:) or, for docker-archive:, the config digest (what
	// `docker images --no-trunc` shows as the image ID). Zero when the
	// reference is not pinned.
	Digest v1.Hash
}

// Pinned reports whether the reference names its image by digest, which
// makes what is fetched verifiable end to end.
func (r Reference) Pinned() bool { return r.Digest.Hex != "" }

// String is the reference in its canonical form, the one `image list`
// shows: docker://index.docker.io/library/busybox:latest.
func (r Reference) String() string {
	if r.Transport == Docker {
		return "docker://" + r.Name.Name()
	}
	s := string(r.Transport) + ":" + r.Path
	if r.Ref != "" {
		s += ":" + r.Ref
	}
	if r.Pinned() {
		s += "@" + r.Digest.String()
	}
	return s
}

// Tag is the tag a Docker reference names, "" when it names a digest only.
func (r Reference) Tag() string {
	if t, ok := r.Name.(name.Tag); ok {
		return t.TagStr()
	}
	return ""
}

// IsReference reports whether s uses one of this package's transports, so
// that callers send it here rather than to the ACI fetchers.
func IsReference(s string) bool {
	for _, t := range []Transport{Docker, Layout, OCIArchive, DockerArchive} {
		prefix := string(t) + ":"
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// maxRefLen bounds a reference: a registry name is at most 255 bytes and
// a path at most PATH_MAX.
const maxRefLen = 4096

// ParseReference parses an image reference. Bad input is an
// InvalidArgument error naming the reference.
func ParseReference(s string) (Reference, error) {
	bad := func(format string, args ...any) (Reference, error) {
		return Reference{}, errdefs.InvalidArgument("image reference %q: %s", s, fmt.Sprintf(format, args...))
	}
	if len(s) > maxRefLen {
		return bad("longer than %d bytes", maxRefLen)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return bad("holds a control character")
	}
	switch {
	case strings.HasPrefix(s, "docker://"):
		return parseDocker(s, strings.TrimPrefix(s, "docker://"))
	case strings.HasPrefix(s, "docker-archive:"):
		return parseLocal(s, DockerArchive, strings.TrimPrefix(s, "docker-archive:"))
	case strings.HasPrefix(s, "oci-archive:"):
		return parseLocal(s, OCIArchive, strings.TrimPrefix(s, "oci-archive:"))
	case strings.HasPrefix(s, "oci:"):
		return parseLocal(s, Layout, strings.TrimPrefix(s, "oci:"))
	}
	return bad("unknown transport (want docker://, oci:, oci-archive: or docker-archive:)")
}

func parseDocker(orig, rest string) (Reference, error) {
	if rest == "" {
		return Reference{}, errdefs.InvalidArgument("image reference %q: no repository", orig)
	}
	// go-containerregistry applies Docker Hub's rules: a name without a
	// registry is on index.docker.io (docker.io is an alias), a one-part
	// repository there is under library/, and no tag means latest. Its
	// parser takes a name with both a tag and a digest; the digest wins.
	ref, err := name.ParseReference(rest, name.WithDefaultRegistry(name.DefaultRegistry), name.WithDefaultTag(name.DefaultTag))
	if err != nil {
		return Reference{}, errdefs.InvalidArgument("image reference %q: %v", orig, err)
	}
	r := Reference{Transport: Docker, Name: ref}
	if t, ok := ref.(name.Tag); ok && !validTag(t.TagStr()) {
		return Reference{}, errdefs.InvalidArgument("image reference %q: tag %q is not a tag (letters, digits, _ . -, not starting with . or -, at most 128)", orig, t.TagStr())
	}
	if d, ok := ref.(name.Digest); ok {
		h, err := v1.NewHash(d.DigestStr())
		if err != nil || h.Algorithm != "sha256" {
			return Reference{}, errdefs.InvalidArgument("image reference %q: digest must be sha256:<64 hex digits>", orig)
		}
		r.Digest = h
		// Keep only the repository and digest: a tag next to a digest
		// means nothing to the registry and would only mislead.
		r.Name = d.Context().Digest(h.String())
	}
	return r, nil
}

// parseLocal parses PATH[:REF][@sha256:HEX]. As in skopeo, the first colon
// ends the path, so a path with a colon cannot be named (give it through a
// symlink).
func parseLocal(orig string, t Transport, rest string) (Reference, error) {
	r := Reference{Transport: t}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		h, err := v1.NewHash(rest[i+1:])
		if err != nil || h.Algorithm != "sha256" {
			return Reference{}, errdefs.InvalidArgument("image reference %q: digest must be sha256:<64 hex digits>", orig)
		}
		r.Digest, rest = h, rest[:i]
	}
	r.Path, r.Ref, _ = strings.Cut(rest, ":")
	if r.Path == "" {
		return Reference{}, errdefs.InvalidArgument("image reference %q: no path", orig)
	}
	if strings.ContainsAny(r.Ref, "@/ ") && t == Layout {
		return Reference{}, errdefs.InvalidArgument("image reference %q: %q is not a reference name", orig, r.Ref)
	}
	if h, err := v1.NewHash(r.Ref); err == nil && !r.Pinned() {
		// oci:DIR:sha256:HEX names a manifest by digest.
		if h.Algorithm != "sha256" {
			return Reference{}, errdefs.InvalidArgument("image reference %q: digest must be sha256:<64 hex digits>", orig)
		}
		r.Digest, r.Ref = h, ""
	}
	return r, nil
}

// validTag is Docker's rule for tags, which go-containerregistry checks
// only in part: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func validTag(t string) bool {
	if t == "" || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for _, c := range t {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}
