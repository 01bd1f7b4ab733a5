package discover

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParseMeta(t *testing.T) {
	tests := []struct {
		name string
		page string
		want []Meta
	}{
		{
			name: "spec example",
			page: `<html><head>
<meta name="ac-discovery" content="example.com https://storage.example.com/{os}/{arch}/{name}-{version}.{ext}">
<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
</head></html>`,
			want: []Meta{
				{Name: TagImage, Prefix: "example.com", URL: "https://storage.example.com/{os}/{arch}/{name}-{version}.{ext}"},
				{Name: TagPubkey, Prefix: "example.com", URL: "https://example.com/pubkeys.gpg"},
			},
		},
		{
			name: "self-closing, extra white space, trailing slash on the prefix",
			page: `<meta name="ac-discovery" content="  example.com/app/   https://a/{name}.{ext} "/>`,
			want: []Meta{{Name: TagImage, Prefix: "example.com/app", URL: "https://a/{name}.{ext}"}},
		},
		{
			name: "other meta tags and malformed contents skipped",
			page: `<meta name="go-import" content="example.com git https://x">
<meta name="ac-discovery" content="example.com">
<meta name="ac-discovery" content="example.com https://a b">
<meta name="ac-discovery">
<meta content="example.com https://a" name="ac-discovery-pubkeys">`,
			want: []Meta{{Name: TagPubkey, Prefix: "example.com", URL: "https://a"}},
		},
		{name: "not html", page: "\x00\x01{json: true}", want: nil},
		{name: "empty", page: "", want: nil},
		{
			name: "meta in the body counts too",
			page: `<body><meta name="ac-discovery-pubkeys" content="a.b https://k"></body>`,
			want: []Meta{{Name: TagPubkey, Prefix: "a.b", URL: "https://k"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseMeta(strings.NewReader(tt.page))
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseMetaBounded(t *testing.T) {
	page := strings.Repeat(`<meta name="ac-discovery-pubkeys" content="a.b https://k">`, 10*maxMetas)
	if got := len(ParseMeta(strings.NewReader(page))); got != maxMetas {
		t.Fatalf("got %d tags, want the bound %d", got, maxMetas)
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		name, prefix, image string
		want                bool
	}{
		{name: "equal", prefix: "example.com/app", image: "example.com/app", want: true},
		{name: "below", prefix: "example.com", image: "example.com/app/db", want: true},
		{name: "sibling with the prefix as a string prefix", prefix: "example.com/app", image: "example.com/apple", want: false},
		{name: "parent", prefix: "example.com/app", image: "example.com", want: false},
		{name: "other host", prefix: "example.com", image: "example.org/app", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Meta{Prefix: tt.prefix}).Covers(tt.image); got != tt.want {
				t.Fatalf("Covers = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"version": "1.0.0", "os": "linux", "arch": "amd64", "ext": "aci", "channel": "a b/../c?x"}
	tests := []struct {
		name, tmpl, want, err string
	}{
		{
			name: "spec example", tmpl: "https://storage.example.com/{os}/{arch}/{name}-{version}.{ext}",
			want: "https://storage.example.com/linux/amd64/example.com/app-1.0.0.aci",
		},
		{
			name: "label values are path-escaped", tmpl: "https://s/{name}/{channel}.{ext}",
			want: "https://s/example.com/app/a%20b%2F..%2Fc%3Fx.aci",
		},
		{name: "repeated variable", tmpl: "https://s/{os}/{os}.{ext}", want: "https://s/linux/linux.aci"},
		{name: "http allowed here (the caller decides)", tmpl: "http://s/{name}.{ext}", want: "http://s/example.com/app.aci"},
		{name: "unknown variable", tmpl: "https://s/{name}-{flavor}.{ext}", err: "no value for {flavor}"},
		{name: "other scheme", tmpl: "hdfs://s/{name}.{ext}", err: "not an http or https URL"},
		{name: "no host", tmpl: "https:///{name}.{ext}", err: "not an http or https URL"},
		{name: "relative", tmpl: "/{name}.{ext}", err: "not an http or https URL"},
		{name: "unbalanced brace left as is", tmpl: "https://s/{name}.{ext", want: "https://s/example.com/app.{ext"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Expand(tt.tmpl, "example.com/app", vars)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want an invalid argument with %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	metas := []Meta{
		{Name: TagImage, Prefix: "example.com/other", URL: "https://o/{name}.{ext}"},
		{Name: TagImage, Prefix: "example.com", URL: "https://a/{name}-{version}-{os}-{arch}.{ext}"},
		{Name: TagImage, Prefix: "example.com", URL: "https://b/{name}.tar"},
		{Name: TagImage, Prefix: "example.com", URL: "https://c/{name}-{nolabel}.{ext}"},
		{Name: TagImage, Prefix: "example.com/app", URL: "https://d/{name}.{ext}"},
		{Name: TagPubkey, Prefix: "example.com", URL: "https://k/1"},
		{Name: TagPubkey, Prefix: "example.com/app", URL: "https://k/1"},
		{Name: TagPubkey, Prefix: "example.com/other", URL: "https://k/2"},
	}
	eps, skipped := Endpoints(metas, "example.com/app", Vars(map[string]string{"version": "2", "os": "linux", "arch": "amd64"}))
	want := []Endpoint{
		{ACI: "https://a/example.com/app-2-linux-amd64.aci", ASC: "https://a/example.com/app-2-linux-amd64.aci.asc"},
		{ACI: "https://d/example.com/app.aci", ASC: "https://d/example.com/app.aci.asc"},
	}
	if !reflect.DeepEqual(eps, want) {
		t.Fatalf("endpoints %+v\nwant %+v", eps, want)
	}
	if len(skipped) != 2 {
		t.Fatalf("skipped %v, want the template without {ext} and the one with an unknown label", skipped)
	}
	if keys := PublicKeys(metas, "example.com/app"); !reflect.DeepEqual(keys, []string{"https://k/1"}) {
		t.Fatalf("keys %v", keys)
	}
}

func TestVarsDefaults(t *testing.T) {
	v := Vars(nil)
	if v["version"] != DefaultVersion || v["os"] == "" || v["arch"] == "" {
		t.Fatalf("defaults missing: %v", v)
	}
	v = Vars(map[string]string{"version": "1", "os": "freebsd", "arch": "i386"})
	if v["version"] != "1" || v["os"] != "freebsd" || v["arch"] != "i386" {
		t.Fatalf("asked labels replaced: %v", v)
	}
}

// FuzzParseMeta: any page parses without panicking, and every tag returned
// has a known name, a prefix and a URL without white space.
func FuzzParseMeta(f *testing.F) {
	f.Add(`<meta name="ac-discovery" content="example.com https://s/{name}.{ext}">`)
	f.Add(`<meta name="ac-discovery-pubkeys" content="example.com/ https://k">`)
	f.Add(`<meta name="ac-discovery" content=" ">`)
	f.Add("<html><head><meta")
	f.Fuzz(func(t *testing.T, page string) {
		for _, m := range ParseMeta(strings.NewReader(page)) {
			if (m.Name != TagImage && m.Name != TagPubkey) || m.Prefix == "" || m.URL == "" ||
				strings.ContainsAny(m.Prefix+m.URL, " \t\n\r\f") || strings.HasSuffix(m.Prefix, "/") {
				t.Fatalf("bad tag %+v from %q", m, page)
			}
		}
	})
}

// FuzzExpand: a template either fails as an invalid argument or gives an
// http(s) URL with a host, in which a label value never adds a path
// element, a query or a fragment.
func FuzzExpand(f *testing.F) {
	f.Add("https://s/{name}-{version}.{ext}", "1.0")
	f.Add("https://s/{version}/{ext}", "../../etc?x#y")
	f.Add("http://{version}/{name}.{ext}", "host")
	f.Add("{version}", "https://evil")
	f.Fuzz(func(t *testing.T, tmpl, version string) {
		got, err := Expand(tmpl, "example.com/app", map[string]string{"version": version, "ext": "aci"})
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		u, perr := url.Parse(got)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("Expand(%q) = %q, not an http(s) URL with a host", tmpl, got)
		}
		if !strings.Contains(tmpl, "{version}") {
			return
		}
		// With a fixed value, the structure of the URL must not change.
		ref, err := Expand(tmpl, "example.com/app", map[string]string{"version": "v", "ext": "aci"})
		if err != nil {
			t.Fatalf("template accepted with %q but not with v: %v", version, err)
		}
		r, _ := url.Parse(ref)
		// An empty value may leave a query or fragment empty; it must
		// not make one.
		if strings.Count(u.EscapedPath(), "/") != strings.Count(r.EscapedPath(), "/") || (u.RawQuery != "" && r.RawQuery == "") || (u.Fragment != "" && r.Fragment == "") {
			t.Fatalf("label value %q changed the URL's structure: %q against %q", version, got, ref)
		}
	})
}
