package fetch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/discover"
	"github.com/nosecone/nscn/internal/download"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pgp"
	"github.com/nosecone/nscn/store/index"
)

// maxDependencyDepth bounds a chain of dependencies fetched by discovery:
// servers choose the names, and a chain of ever new ones would not end.
const maxDependencyDepth = 32

// wanted is an image asked for by name: on the command line, or as a
// dependency of an image fetched by discovery.
type wanted struct {
	name string
	// labels are those asked for; the image's must match them. os and
	// arch, when not asked for, are the host's in the templates, and an
	// image that has them must have the host's.
	labels map[string]string
	// pin is the image ID a dependency names, "" for none.
	pin string
}

// String names the image as the user would type it, labels sorted.
func (w wanted) String() string {
	var b strings.Builder
	b.WriteString(w.name)
	for _, k := range slices.Sorted(maps.Keys(w.labels)) {
		fmt.Fprintf(&b, ",%s=%s", k, w.labels[k])
	}
	return b.String()
}

// match checks the name and labels of a fetched image against what was
// asked (appc discovery.md, "Validation"): every label asked for is the
// image's with the same value; a label not asked for may have any value,
// except os and arch, which must be the host's when the image has them.
func (w wanted) match(name string, labels map[string]string) error {
	if name != w.name {
		return errdefs.PermissionDenied("image discovered for %s is named %s; refused", w, name)
	}
	host := discover.Vars(nil)
	for k, want := range w.labels {
		if got, ok := labels[k]; !ok || got != want {
			return errdefs.PermissionDenied("image discovered for %s has label %s=%q, not %q; refused", w, k, got, want)
		}
	}
	for _, k := range []string{"os", "arch"} {
		if _, asked := w.labels[k]; asked {
			continue
		}
		if got, ok := labels[k]; ok && got != host[k] {
			return errdefs.PermissionDenied("image discovered for %s is for %s=%s, not this host's %s; refused", w, k, got, host[k])
		}
	}
	return nil
}

// link is one image of a chain of fetches by discovery in progress: the
// image asked for, the dependencies it is fetching, theirs. It detects
// cycles, by what was asked and by URL (a second fetch of a URL in
// progress would wait for its own lock).
type link struct {
	asked, url string
	parent     *link
}

func (l *link) depth() int {
	n := 0
	for ; l != nil; l = l.parent {
		n++
	}
	return n
}

// cycle returns the error naming the cycle when asked or u is in the
// chain, else nil.
func (l *link) cycle(asked, u string) error {
	var path []string
	found := false
	for x := l; x != nil; x = x.parent {
		path = append(path, x.asked)
		if (asked != "" && x.asked == asked) || (u != "" && x.url == u) {
			found = true
			break
		}
	}
	if !found {
		return nil
	}
	slices.Reverse(path)
	if asked == "" {
		asked = path[0]
	}
	return errdefs.InvalidArgument("dependency cycle: %s → %s", strings.Join(path, " → "), asked)
}

func (f *Fetcher) newDiscoverer() *discover.Client {
	opts := download.Options{Client: f.Client, InsecureTLS: f.InsecureTLS}
	return &discover.Client{Download: opts, InsecureHTTP: f.InsecureHTTP, Header: f.Auth.Header, Log: f.logger()}
}

// discover fetches the image w by appc discovery: its signature checked
// as any remote image's (before it is decompressed), its name and labels
// matched against w before it is committed, and its dependencies that the
// store lacks fetched by discovery in turn, before it is committed too.
// parent is the chain of fetches this one is for (nil at the top).
func (f *Fetcher) discover(ctx context.Context, dc *discover.Client, w wanted, parent *link) (*index.Image, error) {
	asked := w.String()
	if err := parent.cycle(asked, ""); err != nil {
		return nil, err
	}
	if parent.depth() >= maxDependencyDepth {
		return nil, errdefs.InvalidArgument("image %s: dependencies nested deeper than %d", asked, maxDependencyDepth)
	}
	if !f.InsecureImage {
		if err := f.ensureKeys(ctx, dc, w.name); err != nil {
			return nil, err
		}
	}
	vars := discover.Vars(w.labels)
	found, err := dc.Image(ctx, w.name, vars)
	if err != nil {
		return nil, err
	}
	var last error
	for _, ep := range found.Endpoints {
		if err := parent.cycle("", ep.ACI); err != nil {
			return nil, err
		}
		here := &link{asked: asked, url: ep.ACI, parent: parent}
		accept := func(ctx context.Context, m *schema.ImageManifest) error {
			if err := w.match(m.Name.String(), labelsOf(m.Labels)); err != nil {
				return err
			}
			return f.fetchDependencies(ctx, dc, m, here)
		}
		f.logger().Info("fetching image by discovery", "image", asked, "url", ep.ACI, "page", found.Page)
		im, err := f.fetchRemote(ctx, ep.ACI, ep.ASC, accept)
		if err == nil {
			// A stored copy of the URL was not seen by accept: the same
			// URL may serve other labels (a template without {os}).
			if err := w.match(im.Name, im.Labels); err != nil {
				return nil, err
			}
			return im, nil
		}
		if !errors.Is(err, errdefs.ErrNotFound) && !errors.Is(err, errdefs.ErrUnavailable) {
			return nil, err
		}
		f.logger().Debug("discovered endpoint failed; trying the next", "image", asked, "url", ep.ACI, "error", err)
		last = err
	}
	return nil, fmt.Errorf("image %s: every discovered location failed, the last: %w", asked, last)
}

// fetchDependencies makes sure the dependencies of m, fetched by discovery
// for the chain here, are in the store: those the store has are used (a
// pinned image ID must be there exactly), the others are discovered. An
// image ID pinned by a dependency must be the ID of what discovery gave.
func (f *Fetcher) fetchDependencies(ctx context.Context, dc *discover.Client, m *schema.ImageManifest, here *link) error {
	for _, d := range m.Dependencies {
		_, err := f.Store.ResolveDependency(ctx, d)
		if err == nil {
			continue
		}
		if !errors.Is(err, errdefs.ErrNotFound) || f.PullPolicy == PullNever {
			return fmt.Errorf("image %s: %w", m.Name, err)
		}
		dw := wanted{name: d.ImageName.String(), labels: labelsOf(d.Labels)}
		if d.ImageID != nil && !d.ImageID.Empty() {
			dw.pin = d.ImageID.String()
		}
		im, err := f.discover(ctx, dc, dw, here)
		if err != nil {
			return fmt.Errorf("dependency %s of image %s: %w", dw, m.Name, err)
		}
		if dw.pin != "" && !sameImageID(im.ID, dw.pin) {
			return errdefs.PermissionDenied("dependency %s of image %s is pinned to image %s, and discovery gave image %s; refused", dw, m.Name, dw.pin, im.Key)
		}
	}
	return nil
}

// sameImageID compares image IDs that may be shortened.
func sameImageID(a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

func labelsOf(ls types.Labels) map[string]string {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Name.String()] = l.Value
	}
	return m
}

// ensureKeys makes sure a key is trusted for name before its image is
// discovered. With TrustKeysFromHTTPS and none trusted yet, the keys the
// name's discovery page names over https are trusted for the name, as rkt
// does; otherwise the refusal says how to trust them.
func (f *Fetcher) ensureKeys(ctx context.Context, dc *discover.Client, name string) error {
	ok, err := f.Keys.TrustsAny(ctx, name)
	if err != nil || ok {
		return err
	}
	if !f.TrustKeysFromHTTPS {
		return errdefs.FailedPrecondition("image %s: no keys are trusted for it; review and trust the keys its publisher serves with "+
			"\"nscn trust --prefix %s\", or trust them without review with --trust-keys-from-https, "+
			"or skip signature verification with --insecure-options=image", name, name)
	}
	if f.InsecureTLS {
		return errdefs.FailedPrecondition("image %s: no keys are trusted for it, and --trust-keys-from-https does not trust keys "+
			"fetched without TLS certificate verification (--insecure-options=tls); trust them with \"nscn trust --prefix %s\"", name, name)
	}
	page, urls, err := dc.PublicKeys(ctx, name)
	if err != nil {
		return fmt.Errorf("no keys are trusted for image %s: %w", name, err)
	}
	trusted := 0
	for _, u := range urls {
		if pu, err := url.Parse(u); err != nil || pu.Scheme != "https" {
			f.logger().Warn("discovered key not trusted automatically: not an https URL", "image", name, "url", u)
			continue
		}
		opts := f.withAuth(download.Options{Client: f.Client}, u)
		opts.MaxSize = pgp.MaxKeySize
		data, err := download.Get(ctx, u, opts)
		if err != nil {
			return fmt.Errorf("fetch key of image %s: %w", name, err)
		}
		fpr, ids, err := pgp.KeyInfo(data)
		if err != nil {
			return fmt.Errorf("key %s of image %s: %w", u, name, err)
		}
		if _, err := f.Keys.StoreTrustedKey(ctx, data, name, false); err != nil {
			return fmt.Errorf("key %s of image %s: %w", u, name, err)
		}
		f.logger().Warn("trusting a key discovered over https (--trust-keys-from-https)",
			"prefix", name, "key", pgp.FormatFingerprint(fpr), "userIDs", strings.Join(ids, "; "), "url", u)
		trusted++
	}
	if trusted == 0 {
		return errdefs.FailedPrecondition("image %s: no keys are trusted for it, and its discovery page %s names no key over https", name, page)
	}
	return nil
}
