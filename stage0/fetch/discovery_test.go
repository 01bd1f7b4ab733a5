package fetch

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nosecone/nscn/internal/discover"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pgp"
	"github.com/nosecone/nscn/store"
)

func TestWantedMatch(t *testing.T) {
	host := discover.Vars(nil)
	other := "freebsd"
	if host["os"] == other {
		other = "linux"
	}
	tests := []struct {
		name   string
		want   wanted
		image  string
		labels map[string]string
		err    string // "" for a match
	}{
		{name: "name only, any labels", want: wanted{name: "example.com/app"}, image: "example.com/app", labels: map[string]string{"version": "1", "channel": "beta"}},
		{name: "other name", want: wanted{name: "example.com/app"}, image: "example.com/evil", err: "is named example.com/evil"},
		{name: "version asked and given", want: wanted{name: "example.com/app", labels: map[string]string{"version": "1"}}, image: "example.com/app", labels: map[string]string{"version": "1"}},
		{name: "version asked, other given", want: wanted{name: "example.com/app", labels: map[string]string{"version": "1"}}, image: "example.com/app", labels: map[string]string{"version": "2"}, err: `version="2", not "1"`},
		{name: "label asked, absent", want: wanted{name: "example.com/app", labels: map[string]string{"channel": "alpha"}}, image: "example.com/app", err: `channel=""`},
		{name: "host os by default", want: wanted{name: "example.com/app"}, image: "example.com/app", labels: map[string]string{"os": host["os"], "arch": host["arch"]}},
		{name: "another os, not asked", want: wanted{name: "example.com/app"}, image: "example.com/app", labels: map[string]string{"os": other}, err: "not this host's"},
		{name: "another os, asked", want: wanted{name: "example.com/app", labels: map[string]string{"os": other}}, image: "example.com/app", labels: map[string]string{"os": other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.want.match(tt.image, tt.labels)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, errdefs.ErrPermissionDenied) {
				t.Fatalf("err = %v, want a refusal with %q", err, tt.err)
			}
		})
	}
}

func TestLinkCycle(t *testing.T) {
	var top *link
	a := &link{asked: "example.com/a", url: "https://s/a.aci", parent: top}
	b := &link{asked: "example.com/b,version=1", url: "https://s/b.aci", parent: a}
	tests := []struct {
		name       string
		chain      *link
		asked, url string
		want       string // "" for no cycle
	}{
		{name: "empty chain", chain: nil, asked: "example.com/a"},
		{name: "new name", chain: b, asked: "example.com/c"},
		{name: "back to the top", chain: b, asked: "example.com/a", want: "dependency cycle: example.com/a → example.com/b,version=1 → example.com/a"},
		{name: "itself", chain: a, asked: "example.com/a", want: "dependency cycle: example.com/a → example.com/a"},
		{name: "same name, other labels", chain: b, asked: "example.com/b,version=2"},
		{name: "a URL in progress", chain: b, url: "https://s/a.aci", want: "dependency cycle: example.com/a → example.com/b,version=1 → example.com/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.chain.cycle(tt.asked, tt.url)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if b.depth() != 2 || (*link)(nil).depth() != 0 {
		t.Fatal("depth")
	}
}

// site is a discovery site for names under example.com on an httptest TLS
// server (its certificate is valid for example.com), reached whatever the
// host through the fetcher's Client.
type site struct {
	mu    sync.Mutex
	files map[string][]byte // URL path -> content
	gets  int               // GETs of files
}

const sitePage = `<meta name="ac-discovery" content="example.com https://example.com/aci/{name}-{version}.{ext}">`

func newSite(t *testing.T) (*site, *http.Client) {
	t.Helper()
	s := &site{files: map[string][]byte{}}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.URL.Query().Get("ac-discovery") == "1" {
			if r.Host == "example.com" && (r.URL.Path == "" || r.URL.Path == "/") {
				_, _ = w.Write([]byte(sitePage))
				return
			}
			http.NotFound(w, r)
			return
		}
		s.gets++
		b, ok := s.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	t.Cleanup(tr.CloseIdleConnections)
	return s, &http.Client{Transport: tr}
}

func (s *site) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// publish serves a plain-tar ACI with the given manifest where the site's
// template puts name at version.
func (s *site) publish(t *testing.T, name, version, manifest string) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range []struct {
		name, body string
		dir        bool
	}{{name: "manifest", body: manifest}, {name: "rootfs", dir: true}} {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.dir {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files["/aci/"+name+"-"+version+".aci"] = b.Bytes()
}

func manifestOf(name string, labels map[string]string, deps ...string) string {
	m := map[string]any{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name}
	var ls []map[string]string
	for k, v := range labels {
		ls = append(ls, map[string]string{"name": k, "value": v})
	}
	if ls != nil {
		m["labels"] = ls
	}
	var ds []map[string]string
	for _, d := range deps {
		ds = append(ds, map[string]string{"imageName": d})
	}
	if ds != nil {
		m["dependencies"] = ds
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestFetchByDiscovery(t *testing.T) {
	tests := []struct {
		name    string
		publish func(t *testing.T, s *site)
		ref     string
		policy  PullPolicy
		err     error  // class; nil for success
		msg     string // in the error
		stored  []string
	}{
		{
			name: "found and stored",
			publish: func(t *testing.T, s *site) {
				s.publish(t, "example.com/app", "latest", manifestOf("example.com/app", map[string]string{"version": "1"}))
			},
			ref: "example.com/app", stored: []string{"example.com/app"},
		},
		{
			name: "version asked",
			publish: func(t *testing.T, s *site) {
				s.publish(t, "example.com/app", "1", manifestOf("example.com/app", map[string]string{"version": "1"}))
			},
			ref: "example.com/app:1", policy: PullNew, stored: []string{"example.com/app"},
		},
		{
			name: "label mismatch stores nothing",
			publish: func(t *testing.T, s *site) {
				s.publish(t, "example.com/app", "2", manifestOf("example.com/app", map[string]string{"version": "1"}))
			},
			ref: "example.com/app:2", err: errdefs.ErrPermissionDenied, msg: `version="1", not "2"`,
		},
		{
			name: "name mismatch stores nothing",
			publish: func(t *testing.T, s *site) {
				s.publish(t, "example.com/app", "latest", manifestOf("example.com/evil", nil))
			},
			ref: "example.com/app", err: errdefs.ErrPermissionDenied, msg: "is named example.com/evil",
		},
		{
			name: "dependency discovered",
			publish: func(t *testing.T, s *site) {
				s.publish(t, "example.com/top", "latest", manifestOf("example.com/top", nil, "example.com/base"))
				s.publish(t, "example.com/base", "latest", manifestOf("example.com/base", nil))
			},
			ref: "example.com/top", stored: []string{"example.com/base", "example.com/top"},
		},
		{
			name: "cycle",
			publish: func(t *testing.T, s *site) {
				s.publish(t, "example.com/a", "latest", manifestOf("example.com/a", nil, "example.com/b"))
				s.publish(t, "example.com/b", "latest", manifestOf("example.com/b", nil, "example.com/a"))
			},
			ref: "example.com/a", err: errdefs.ErrInvalidArgument, msg: "dependency cycle: example.com/a → example.com/b → example.com/a",
		},
		{
			name: "missing dependency",
			publish: func(t *testing.T, s *site) {
				s.publish(t, "example.com/top", "latest", manifestOf("example.com/top", nil, "example.com/gone"))
			},
			ref: "example.com/top", err: errdefs.ErrNotFound, msg: "dependency example.com/gone of image example.com/top",
		},
		{
			name: "pull policy never",
			publish: func(t *testing.T, s *site) {
				s.publish(t, "example.com/app", "latest", manifestOf("example.com/app", nil))
			},
			ref: "example.com/app", policy: PullNever, err: errdefs.ErrNotFound, msg: "pull policy is never",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, client := newSite(t)
			tt.publish(t, s)
			dir := t.TempDir()
			st, err := store.Open(t.Context(), filepath.Join(dir, "data"))
			if err != nil {
				t.Fatal(err)
			}
			policy := tt.policy
			if policy == "" {
				policy = PullUpdate
			}
			f := &Fetcher{
				Store: st, Keys: &pgp.Keystore{LocalDir: filepath.Join(dir, "etc")}, InsecureImage: true,
				PullPolicy: policy, Client: client, DownloadDir: filepath.Join(dir, "data", "tmp", "downloads"),
			}
			im, err := f.Fetch(t.Context(), Request{Ref: tt.ref})
			if tt.err != nil {
				if err == nil || !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("err = %v, want class %v with %q", err, tt.err, tt.msg)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			ims, err := st.Images(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, x := range ims {
				names = append(names, x.Name)
			}
			slices.Sort(names)
			if !slices.Equal(names, tt.stored) {
				t.Fatalf("stored %v, want %v", names, tt.stored)
			}
			if tt.err != nil {
				return
			}
			// The stored copy does for pull policy new, without a request.
			before := s.count()
			f.PullPolicy = PullNew
			again, err := f.Fetch(t.Context(), Request{Ref: tt.ref})
			if err != nil || again.Key != im.Key || s.count() != before {
				t.Fatalf("pull policy new: %v, %d more requests", err, s.count()-before)
			}
		})
	}
}
