package authconfig

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		data string
		want *Entry
		err  string
	}{
		{
			name: "rkt basic auth",
			data: `{"rktKind":"auth","rktVersion":"v1","domains":["Example.com","example.org:8443"],"type":"basic","credentials":{"user":"u","password":"p"}}`,
			want: &Entry{Kind: KindAuth, Domains: []string{"example.com", "example.org:8443"}, Type: TypeBasic, Credentials: Credentials{User: "u", Password: "p"}},
		},
		{
			name: "nscn oauth",
			data: `{"nscnKind":"auth","nscnVersion":"v1","domains":["example.com"],"type":"oauth","credentials":{"token":"t"}}`,
			want: &Entry{Kind: KindAuth, Domains: []string{"example.com"}, Type: TypeOAuth, Credentials: Credentials{Token: "t"}},
		},
		{
			name: "rkt dockerAuth",
			data: `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["quay.io"],"credentials":{"user":"u","password":"p"}}`,
			want: &Entry{Kind: KindDockerAuth, Domains: []string{"quay.io"}, Type: TypeBasic, Credentials: Credentials{User: "u", Password: "p"}},
		},
		{name: "not json", data: `domains: example.com`, err: "parse auth entry"},
		{name: "two values", data: `{"rktKind":"auth"} {}`, err: "more than one"},
		{name: "unknown field", data: `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"basic","credentials":{"user":"u"},"extra":1}`, err: "unknown field"},
		{name: "both key styles", data: `{"rktKind":"auth","nscnKind":"auth","nscnVersion":"v1"}`, err: "both"},
		{name: "version 2", data: `{"rktKind":"auth","rktVersion":"v2","domains":["a"],"type":"basic","credentials":{"user":"u"}}`, err: "version"},
		{name: "unknown kind", data: `{"rktKind":"paths","rktVersion":"v1","domains":["a"],"credentials":{}}`, err: "unknown kind"},
		{name: "no credentials", data: `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"basic"}`, err: "no credentials"},
		{name: "no domains", data: `{"rktKind":"auth","rktVersion":"v1","type":"basic","credentials":{"user":"u"}}`, err: "no domains"},
		{name: "domain with a scheme", data: `{"rktKind":"auth","rktVersion":"v1","domains":["https://a"],"type":"basic","credentials":{"user":"u"}}`, err: "not a host"},
		{name: "domain with a path", data: `{"rktKind":"auth","rktVersion":"v1","domains":["a/b"],"type":"basic","credentials":{"user":"u"}}`, err: "not a host"},
		{name: "basic without a user", data: `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"basic","credentials":{"password":"p"}}`, err: "user and a password"},
		{name: "oauth with a user", data: `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"oauth","credentials":{"user":"u","token":"t"}}`, err: "a token"},
		{name: "unknown type", data: `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"digest","credentials":{"user":"u"}}`, err: "unknown type"},
		{name: "dockerAuth with domains", data: `{"rktKind":"dockerAuth","rktVersion":"v1","domains":["a"],"credentials":{"user":"u"}}`, err: "registries"},
		{name: "auth with registries", data: `{"rktKind":"auth","rktVersion":"v1","registries":["a"],"type":"basic","credentials":{"user":"u"}}`, err: "not registries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.data))
			if tt.err != "" {
				if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want an invalid argument with %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
}

func writeAuth(t *testing.T, cfg, name, data string) {
	t.Helper()
	dir := filepath.Join(cfg, Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func basic(user string, domains ...string) string {
	return `{"rktKind":"auth","rktVersion":"v1","domains":["` + strings.Join(domains, `","`) + `"],"type":"basic","credentials":{"user":"` + user + `","password":"secret-` + user + `"}}`
}

func TestLoad(t *testing.T) {
	local, system := t.TempDir(), t.TempDir()
	writeAuth(t, system, "10-sys.json", basic("sys", "a.example", "b.example"))
	writeAuth(t, system, "20-docker.json", `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["quay.io"],"credentials":{"user":"d","password":"dp"}}`)
	writeAuth(t, local, "10-local.json", basic("local", "b.example"))
	writeAuth(t, local, "README", "not json, not read")
	c, err := Load(local, system)
	if err != nil {
		t.Fatal(err)
	}
	for host, user := range map[string]string{"a.example": "sys", "b.example": "local", "B.Example": "local"} {
		if got := http.Header(c.Header(host)).Get("Authorization"); got == "" {
			t.Fatalf("no header for %s", host)
		}
		if got := c.Auth[strings.ToLower(host)].Credentials.User; got != user {
			t.Fatalf("%s: user %s, want %s", host, got, user)
		}
	}
	if got := http.Header(c.Header("b.example")).Get("Authorization"); got != "Basic bG9jYWw6c2VjcmV0LWxvY2Fs" {
		t.Fatalf("basic header %q", got)
	}
	if c.Header("c.example") != nil {
		t.Fatal("header for an unconfigured host")
	}
	if cr, ok := c.Docker("quay.io"); !ok || cr.User != "d" {
		t.Fatalf("docker credentials %+v %v", cr, ok)
	}
	if n := len(c.Entries()); n != 3 {
		t.Fatalf("%d entries in effect, want 3", n)
	}

	// One domain twice in one directory is refused, naming both files.
	writeAuth(t, local, "20-again.json", basic("again", "b.example"))
	if _, err := Load(local, system); err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "20-again.json") {
		t.Fatalf("duplicate domain: %v", err)
	}
	// A bad file names itself.
	writeAuth(t, local, "20-again.json", `{`)
	if _, err := Load(local, system); err == nil || !strings.Contains(err.Error(), "20-again.json") {
		t.Fatalf("bad file: %v", err)
	}
	// Missing directories hold nothing.
	if c, err := Load(filepath.Join(local, "missing"), ""); err != nil || len(c.Entries()) != 0 {
		t.Fatalf("missing dirs: %v", err)
	}
}

func TestMasked(t *testing.T) {
	e := &Entry{Kind: KindAuth, Domains: []string{"a"}, Type: TypeBasic, Credentials: Credentials{User: "u", Password: "p"}}
	m := e.Masked()
	if m.Credentials.User != "u" || m.Credentials.Password != Mask || e.Credentials.Password != "p" {
		t.Fatalf("masked %+v, original %+v", m, e)
	}
	o := (&Entry{Type: TypeOAuth, Credentials: Credentials{Token: "t"}}).Masked()
	if o.Credentials.Token != Mask {
		t.Fatalf("token not masked: %+v", o)
	}
	if (&Entry{Type: TypeBasic, Credentials: Credentials{User: "u"}}).Masked().Credentials.Password != "" {
		t.Fatal("an empty password was given a mask")
	}
}

// FuzzParse: any file parses or fails as an invalid argument, and a parsed
// entry has a known kind and type, lowercase host domains, and the
// credentials its type needs.
func FuzzParse(f *testing.F) {
	f.Add([]byte(basic("u", "example.com")))
	f.Add([]byte(`{"nscnKind":"auth","nscnVersion":"v1","domains":["example.com"],"type":"oauth","credentials":{"token":"t"}}`))
	f.Add([]byte(`{"rktKind":"dockerAuth","rktVersion":"v1","registries":["quay.io"],"credentials":{"user":"u","password":"p"}}`))
	f.Add([]byte(`{"rktKind":"auth","rktVersion":"v1","domains":["https://x/"],"type":"basic","credentials":{"user":"u"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if (e.Kind != KindAuth && e.Kind != KindDockerAuth) || len(e.Domains) == 0 {
			t.Fatalf("bad entry %+v", e)
		}
		for _, d := range e.Domains {
			if d != strings.ToLower(d) || checkDomain(d) != nil {
				t.Fatalf("bad domain %q", d)
			}
		}
		switch e.Type {
		case TypeBasic:
			if e.Credentials.User == "" {
				t.Fatalf("basic without user: %+v", e)
			}
		case TypeOAuth:
			if e.Credentials.Token == "" {
				t.Fatalf("oauth without token: %+v", e)
			}
		default:
			t.Fatalf("unknown type %+v", e)
		}
		m := e.Masked()
		if (e.Credentials.Password != "" && m.Credentials.Password != Mask) || (e.Credentials.Token != "" && m.Credentials.Token != Mask) {
			t.Fatalf("secret not masked: %+v", m)
		}
	})
}

// TestRegistry: a registry's credentials come from the most important
// directory that names it, whatever the kind, and from its dockerAuth
// entry when one directory has both kinds.
func TestRegistry(t *testing.T) {
	user, local, system := t.TempDir(), t.TempDir(), t.TempDir()
	docker := func(user, registry string) string {
		return `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["` + registry + `"],"credentials":{"user":"` + user + `","password":"p"}}`
	}
	writeAuth(t, system, "10.json", docker("sys-docker", "a.example"))
	writeAuth(t, local, "10.json", basic("local-auth", "a.example", "b.example"))
	writeAuth(t, local, "20.json", docker("local-docker", "b.example"))
	writeAuth(t, user, "10.json", basic("user-auth", "c.example"))
	writeAuth(t, system, "20.json", docker("sys-docker", "c.example"))
	c, err := LoadDirs(user, local, system)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ registry, want string }{
		{registry: "a.example", want: "local-auth"},   // a more important directory's auth entry
		{registry: "B.example", want: "local-docker"}, // one directory: dockerAuth first
		{registry: "c.example", want: "user-auth"},
		{registry: "d.example"},
	}
	for _, tt := range tests {
		t.Run(tt.registry, func(t *testing.T) {
			got := ""
			if e, ok := c.Registry(tt.registry); ok {
				got = e.Credentials.User
			}
			if got != tt.want {
				t.Fatalf("user %q, want %q", got, tt.want)
			}
		})
	}
	if _, ok := (*Config)(nil).Registry("a.example"); ok {
		t.Fatal("a nil Config has an entry")
	}
}
