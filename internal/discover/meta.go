package discover

import (
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/nosecone/nscn/internal/errdefs"
)

// The meta tag names of appc discovery.
const (
	TagImage  = "ac-discovery"
	TagPubkey = "ac-discovery-pubkeys"
)

// Meta is one discovery meta tag:
//
//	<meta name="ac-discovery" content="example.com https://example.com/{name}-{version}.{ext}">
type Meta struct {
	Name   string // TagImage or TagPubkey
	Prefix string // the prefix-match, without a trailing slash
	URL    string // a template (TagImage) or a URL (TagPubkey)
}

// maxMetas bounds how many tags one page may contribute, so a hostile page
// cannot make a client try millions of URLs.
const maxMetas = 64

// ParseMeta returns the discovery meta tags of an HTML page, in document
// order. Tags of other names, and tags whose content is not exactly a
// prefix and a URL separated by white space, are skipped: a page may carry
// other meta tags, and the spec gives no meaning to other contents. It
// never fails; a page that is not HTML has no tags.
func ParseMeta(r io.Reader) []Meta {
	var metas []Meta
	z := html.NewTokenizer(r)
	for len(metas) < maxMetas {
		switch z.Next() {
		case html.ErrorToken:
			return metas
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			if tok.DataAtom != atom.Meta {
				continue
			}
			if m, ok := metaOf(tok.Attr); ok {
				metas = append(metas, m)
			}
		}
	}
	return metas
}

func metaOf(attrs []html.Attribute) (Meta, bool) {
	var name, content string
	for _, a := range attrs {
		if a.Namespace != "" {
			continue
		}
		switch strings.ToLower(a.Key) {
		case "name":
			name = a.Val
		case "content":
			content = a.Val
		}
	}
	if name != TagImage && name != TagPubkey {
		return Meta{}, false
	}
	f := strings.Fields(content)
	if len(f) != 2 {
		return Meta{}, false
	}
	prefix := strings.TrimRight(f[0], "/")
	if prefix == "" {
		return Meta{}, false
	}
	return Meta{Name: name, Prefix: prefix, URL: f[1]}, true
}

// Covers reports whether the tag's prefix-match covers the image name
// component by component: example.com/app covers example.com/app and
// example.com/app/db, not example.com/apple (the keystore's rule, so that
// what a page serves for one name never applies to a sibling).
func (m Meta) Covers(name string) bool {
	return name == m.Prefix || strings.HasPrefix(name, m.Prefix+"/")
}

// templateVar matches one {variable} of a discovery template.
var templateVar = regexp.MustCompile(`\{[^{}]*\}`)

// Expand fills a discovery template: {name} with the image name as it is
// (an AC name is made of URL-safe characters, and its slashes are path
// separators in every published template) and every other {label} with
// the value of vars, path-escaped, so that a label value cannot add path
// elements or a query. It fails with errdefs.ErrInvalidArgument when the
// template names a variable vars lacks, or when the result is not an
// absolute http or https URL with a host.
func Expand(tmpl, name string, vars map[string]string) (string, error) {
	var missing string
	out := templateVar.ReplaceAllStringFunc(tmpl, func(v string) string {
		key := v[1 : len(v)-1]
		if key == "name" {
			return name
		}
		val, ok := vars[key]
		if !ok {
			if missing == "" {
				missing = v
			}
			return v
		}
		return url.PathEscape(val)
	})
	if missing != "" {
		return "", errdefs.InvalidArgument("template %s: no value for %s", tmpl, missing)
	}
	u, err := url.Parse(out)
	if err != nil {
		return "", errdefs.InvalidArgument("template %s: %v", tmpl, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errdefs.InvalidArgument("template %s: not an http or https URL", tmpl)
	}
	// A path that is not a valid escaping as written (a stray "{" in the
	// template, say) is escaped again by net/url when the request is
	// made, from its decoded form: a "/" that a label value brought in
	// as %2F would then become a path element.
	if u.RawPath != "" && strings.Count(u.EscapedPath(), "/") != strings.Count(u.RawPath, "/") {
		return "", errdefs.InvalidArgument("template %s: a value would add a path element once the URL is escaped again", tmpl)
	}
	return out, nil
}

// Endpoint is where discovery says an image and its signature are.
type Endpoint struct {
	ACI string // the image
	ASC string // its detached signature
}

// Endpoints renders every image template of metas that covers name into
// the image and signature URLs, in document order. vars holds the labels
// (version, os, arch and any other); {ext} is filled here. A template
// that cannot be rendered, or that has no {ext} (image and signature would
// be one URL), is reported in skipped with the reason.
func Endpoints(metas []Meta, name string, vars map[string]string) (eps []Endpoint, skipped []error) {
	for _, m := range metas {
		if m.Name != TagImage || !m.Covers(name) {
			continue
		}
		if !strings.Contains(m.URL, "{ext}") {
			skipped = append(skipped, errdefs.InvalidArgument("template %s has no {ext}", m.URL))
			continue
		}
		withExt := func(ext string) map[string]string {
			v := make(map[string]string, len(vars)+1)
			for k, x := range vars {
				v[k] = x
			}
			v["ext"] = ext
			return v
		}
		aci, err := Expand(m.URL, name, withExt("aci"))
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		asc, err := Expand(m.URL, name, withExt("aci.asc"))
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		eps = append(eps, Endpoint{ACI: aci, ASC: asc})
	}
	return eps, skipped
}

// PublicKeys returns the key URLs of the pubkey tags of metas that cover
// name, in document order, without duplicates.
func PublicKeys(metas []Meta, name string) []string {
	var keys []string
	for _, m := range metas {
		if m.Name != TagPubkey || !m.Covers(name) {
			continue
		}
		if !slices.Contains(keys, m.URL) {
			keys = append(keys, m.URL)
		}
	}
	return keys
}
