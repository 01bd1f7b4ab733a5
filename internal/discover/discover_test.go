package discover

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/nosecone/nscn/internal/download"
	"github.com/nosecone/nscn/internal/errdefs"
)

// pages serves discovery pages by path, counting requests, on a TLS and a
// plain http server on loopback. Every host name resolves to them: the
// client's dialer ignores the address (the test certificate is valid for
// example.com).
type pages struct {
	mu    sync.Mutex
	tls   map[string]string // path -> page, over https
	plain map[string]string // path -> page, over http
	hits  []string
}

func (p *pages) handler(byPath map[string]string, scheme string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.hits = append(p.hits, scheme+"://"+r.Host+r.URL.Path)
		if r.URL.Query().Get("ac-discovery") != "1" {
			http.Error(w, "want ?ac-discovery=1", http.StatusBadRequest)
			return
		}
		page, ok := byPath[strings.TrimSuffix(r.Host+r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(page))
	}
}

func newClient(t *testing.T, p *pages, insecureHTTP bool) *Client {
	t.Helper()
	ts := httptest.NewTLSServer(p.handler(p.tls, "https"))
	t.Cleanup(ts.Close)
	hs := httptest.NewServer(p.handler(p.plain, "http"))
	t.Cleanup(hs.Close)
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		target := ts.Listener.Addr().String()
		if strings.HasSuffix(addr, ":80") {
			target = hs.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, target)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &Client{Download: download.Options{Client: &http.Client{Transport: tr}, Retries: -1}, InsecureHTTP: insecureHTTP}
}

const appPage = `<html><head>
<meta name="ac-discovery" content="example.com/app https://example.com/images/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery" content="example.com/app http://example.com/plain/{name}.{ext}">
<meta name="ac-discovery-pubkeys" content="example.com/app https://example.com/pubkeys.gpg">
</head></html>`

func TestImageWalksUp(t *testing.T) {
	p := &pages{tls: map[string]string{"example.com": appPage}}
	c := newClient(t, p, false)
	vars := map[string]string{"version": "1", "os": "linux", "arch": "amd64"}
	// example.com/app/sub: found two levels up, at example.com.
	im, err := c.Image(context.Background(), "example.com/app/sub", vars)
	if err != nil || im.Endpoints[0].ACI != "https://example.com/images/example.com/app/sub-1-linux-amd64.aci" {
		t.Fatalf("got %+v, %v", im, err)
	}
	if want := []string{"https://example.com/app/sub", "https://example.com/app", "https://example.com/"}; !reflect.DeepEqual(p.hits, want) {
		t.Fatalf("walk asked for %v, want %v", p.hits, want)
	}
	im, err = c.Image(context.Background(), "example.com/app", vars)
	if err != nil {
		t.Fatal(err)
	}
	want := &Image{
		Page:       "https://example.com?ac-discovery=1",
		Endpoints:  []Endpoint{{ACI: "https://example.com/images/example.com/app-1-linux-amd64.aci", ASC: "https://example.com/images/example.com/app-1-linux-amd64.aci.asc"}},
		PublicKeys: []string{"https://example.com/pubkeys.gpg"},
	}
	if !reflect.DeepEqual(im, want) {
		t.Fatalf("got %+v\nwant %+v", im, want)
	}
	// Key discovery of the same name asks for no page again.
	before := len(p.hits)
	page, keys, err := c.PublicKeys(context.Background(), "example.com/app")
	if err != nil || page != want.Page || !reflect.DeepEqual(keys, want.PublicKeys) {
		t.Fatalf("keys %v at %s: %v", keys, page, err)
	}
	if len(p.hits) != before {
		t.Fatalf("pages fetched again: %v", p.hits[before:])
	}
	for _, h := range p.hits {
		if strings.HasPrefix(h, "http:") {
			t.Fatalf("plain http used without InsecureHTTP: %v", p.hits)
		}
	}
}

func TestImageErrors(t *testing.T) {
	vars := Vars(nil)
	tests := []struct {
		name     string
		pages    *pages
		insecure bool
		image    string
		class    error
		want     string
	}{
		{
			name: "nothing anywhere", pages: &pages{}, image: "example.com/a/b", class: errdefs.ErrNotFound,
			want: "https://example.com/a/b?ac-discovery=1: server answered 404",
		},
		{
			name:  "pages without a tag covering the name",
			pages: &pages{tls: map[string]string{"example.com/a": `<meta name="ac-discovery" content="example.com/ab https://s/{name}.{ext}">`}},
			image: "example.com/a", class: errdefs.ErrNotFound, want: "no ac-discovery tag for example.com/a",
		},
		{
			name:  "only on plain http, not allowed",
			pages: &pages{plain: map[string]string{"example.com": appPage}},
			image: "example.com/app", class: errdefs.ErrNotFound, want: "--insecure-options=http",
		},
		{
			name:  "only an http template, not allowed",
			pages: &pages{tls: map[string]string{"example.com": `<meta name="ac-discovery" content="example.com http://s/{name}.{ext}">`}},
			image: "example.com/app", class: errdefs.ErrPermissionDenied, want: "--insecure-options=http",
		},
		{
			name:  "templates that cannot be rendered",
			pages: &pages{tls: map[string]string{"example.com": `<meta name="ac-discovery" content="example.com https://s/{name}-{flavor}.{ext}">`}},
			image: "example.com/app", class: errdefs.ErrInvalidArgument, want: "no value for {flavor}",
		},
		{name: "not a name", pages: &pages{}, image: "Example.com/../x", class: errdefs.ErrInvalidArgument, want: "image name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.pages, tt.insecure)
			_, err := c.Image(context.Background(), tt.image, vars)
			if err == nil || !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want class %v with %q", err, tt.class, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error on several lines: %q", err)
			}
		})
	}
}

func TestImageOverPlainHTTPWhenAllowed(t *testing.T) {
	p := &pages{plain: map[string]string{"example.com": appPage}}
	c := newClient(t, p, true)
	im, err := c.Image(context.Background(), "example.com/app", map[string]string{"version": "1", "os": "linux", "arch": "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if im.Page != "http://example.com?ac-discovery=1" || len(im.Endpoints) != 2 || im.Endpoints[1].ACI != "http://example.com/plain/example.com/app.aci" {
		t.Fatalf("got %+v", im)
	}
	// https is always tried first.
	if !strings.HasPrefix(p.hits[0], "https://") {
		t.Fatalf("first request %s", p.hits[0])
	}
}

// TestHeaderOverHTTPSOnly: credentials go with https requests to the host
// they are for, never over plain http.
func TestHeaderOverHTTPSOnly(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // scheme -> Authorization
	p := &pages{plain: map[string]string{"example.com": appPage}}
	c := newClient(t, p, true)
	c.Header = func(host string) map[string][]string {
		if host != "example.com" {
			return nil
		}
		return http.Header{"Authorization": {"Bearer t"}}
	}
	// Record what the servers got through the client's transport.
	tr := c.Download.Client.Transport
	c.Download.Client = &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen[r.URL.Scheme] = r.Header.Get("Authorization")
		mu.Unlock()
		return tr.RoundTrip(r)
	})}
	if _, err := c.Image(context.Background(), "example.com/app", Vars(nil)); err != nil {
		t.Fatal(err)
	}
	if seen["https"] != "Bearer t" || seen["http"] != "" {
		t.Fatalf("Authorization sent: %v", seen)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
