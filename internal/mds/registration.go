package mds

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/google/uuid"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mdsclient"
)

// Defaults of "nscn metadata-service", as rkt had them.
const (
	DefaultPort   = mdsclient.DefaultPort
	DefaultSocket = mdsclient.DefaultSocket
)

const (
	// minTokenLen is the shortest token accepted: 22 base64url characters
	// carry 128 bits, the floor the spec sets.
	minTokenLen = 22
	// maxTokenLen bounds a token, which travels in every request path.
	maxTokenLen = 128
	// hmacKeyBytes is the size of a pod's HMAC-SHA512 key.
	hmacKeyBytes = 64
	// maxManifest bounds each manifest in a registration.
	maxManifest = mdsclient.MaxManifest
)

// Registration is what the service needs to know about a pod, the JSON
// body of the registration API; its client, stage0's and the stage1s',
// is package mdsclient.
type Registration = mdsclient.Registration

// pod is a validated registration, as the service keeps it.
type pod struct {
	uuid     string // canonical form
	tokenSum tokenSum
	hasToken bool
	ips      []netip.Addr
	manifest []byte
	// annotations are the pod manifest's, nil when it has none (or null),
	// so that pod/annotations answers null exactly when the manifest that
	// pod/manifest serves decodes to no list: the appc ACE validator
	// compares the two with reflect.DeepEqual.
	annotations types.Annotations
	apps        map[string]*app
	key         []byte // HMAC-SHA512 key, made by the service
}

// app is one app of a registered pod.
type app struct {
	imageID       string
	imageManifest []byte
	annotations   types.Annotations // image's, overridden by the pod's; never nil
}

// validate checks r and turns it into a pod, without its key.
func validate(r *Registration) (*pod, error) {
	u, err := uuid.Parse(r.UUID)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("pod uuid %q: %w", r.UUID, err))
	}
	p := &pod{uuid: u.String(), apps: map[string]*app{}}
	if len(r.PodManifest) > maxManifest {
		return nil, errdefs.InvalidArgument("manifest of pod %s is larger than %d bytes", p.uuid, maxManifest)
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(r.PodManifest, &pm); err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("parse manifest of pod %s: %w", p.uuid, err))
	}
	p.manifest = append([]byte(nil), r.PodManifest...)
	if pm.Annotations != nil {
		p.annotations = append(types.Annotations{}, pm.Annotations...)
	}
	for _, ra := range pm.Apps {
		name := ra.Name.String()
		raw, ok := r.ImageManifests[name]
		if !ok {
			return nil, errdefs.InvalidArgument("pod %s: no image manifest for app %s", p.uuid, name)
		}
		if len(raw) > maxManifest {
			return nil, errdefs.InvalidArgument("pod %s: image manifest of app %s is larger than %d bytes", p.uuid, name, maxManifest)
		}
		var im schema.ImageManifest
		if err := json.Unmarshal(raw, &im); err != nil {
			return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("pod %s: parse image manifest of app %s: %w", p.uuid, name, err))
		}
		if ra.Image.ID.Empty() {
			return nil, errdefs.InvalidArgument("pod %s: app %s has no image id", p.uuid, name)
		}
		p.apps[name] = &app{
			imageID:       ra.Image.ID.String(),
			imageManifest: append([]byte(nil), raw...),
			annotations:   mergeAnnotations(im.Annotations, ra.Annotations),
		}
	}
	for name := range r.ImageManifests {
		if _, ok := p.apps[name]; !ok {
			return nil, errdefs.InvalidArgument("pod %s: image manifest for app %s, which is not in the pod manifest", p.uuid, name)
		}
	}
	if r.Token != "" {
		if err := checkToken(r.Token, u); err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.uuid, err)
		}
		p.tokenSum, p.hasToken = sumToken(r.Token), true
	}
	seen := map[netip.Addr]bool{}
	for _, ip := range r.IPs {
		ip = ip.Unmap()
		switch {
		case !ip.IsValid():
			return nil, errdefs.InvalidArgument("pod %s: invalid address", p.uuid)
		case ip.Zone() != "":
			return nil, errdefs.InvalidArgument("pod %s: address %s has a zone", p.uuid, ip)
		case ip.IsMulticast():
			return nil, errdefs.InvalidArgument("pod %s: address %s is multicast", p.uuid, ip)
		case !p.hasToken && (ip.IsLoopback() || ip.IsUnspecified()):
			return nil, errdefs.InvalidArgument("pod %s: address %s identifies no pod; register it with a token", p.uuid, ip)
		}
		if !seen[ip] {
			seen[ip] = true
			p.ips = append(p.ips, ip)
		}
	}
	if !p.hasToken && len(p.ips) == 0 {
		return nil, errdefs.InvalidArgument("pod %s: a registration needs a token or an address", p.uuid)
	}
	return p, nil
}

// checkToken accepts only URL-path-safe tokens long enough to carry 128
// bits, and not the pod UUID (ace.md: it "SHOULD NOT be easily guessable").
func checkToken(tok string, u uuid.UUID) error {
	if len(tok) < minTokenLen || len(tok) > maxTokenLen {
		return errdefs.InvalidArgument("token must be %d to %d characters long", minTokenLen, maxTokenLen)
	}
	for _, c := range tok {
		if !isTokenChar(c) {
			return errdefs.InvalidArgument("token holds %s; only A-Z, a-z, 0-9, '-' and '_' are allowed", strconv.QuoteRune(c))
		}
	}
	lower := strings.ToLower(tok)
	if lower == u.String() || lower == strings.ReplaceAll(u.String(), "-", "") {
		return errdefs.InvalidArgument("token must not be the pod uuid")
	}
	return nil
}

func isTokenChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// mergeAnnotations returns the image's annotations with the pod manifest's
// app annotations set over them (ace.md, App Metadata "annotations").
func mergeAnnotations(image, podApp types.Annotations) types.Annotations {
	out := append(types.Annotations{}, image...)
	for _, a := range podApp {
		out.Set(a.Name, a.Value)
	}
	return out
}
