// Package authconfig reads the credentials kept in the auth.d directories
// of nscn's configuration directories, in rkt's format, so that rkt's files
// can be copied over as they are:
//
//	<cfg>/auth.d/*.json, one entry per file:
//	{"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"],
//	 "type": "basic", "credentials": {"user": "u", "password": "p"}}
//	{"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"],
//	 "type": "oauth", "credentials": {"token": "t"}}
//	{"rktKind": "dockerAuth", "rktVersion": "v1", "registries": ["quay.io"],
//	 "credentials": {"user": "u", "password": "p"}}
//
// "nscnKind" and "nscnVersion" may be written instead of rkt's keys. An
// "auth" entry applies to https requests to its domains (appc discovery
// pages, images, signatures) and to registries of that name; a "dockerAuth"
// entry to the registries named (Registry says which wins). The user's
// directory ($XDG_CONFIG_HOME/nscn) wins over the local one (/etc/nscn),
// which wins over the system one (/usr/lib/nscn), domain by domain; within
// one directory a domain configured twice is an error, since which file
// wins would depend on names nobody chose for that.
//
// The package parses and merges; it sends nothing. Masked gives the entry
// as it may be shown (nscn config). It runs in stage0, imports the stdlib
// and errdefs only, and needs read access to the configuration directories.
package authconfig

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nosecone/nscn/internal/configdir"
	"github.com/nosecone/nscn/internal/errdefs"
)

// Dir is the directory of auth files inside a configuration directory.
const Dir = "auth.d"

// Kind says what an entry configures.
type Kind string

// The kinds of entries.
const (
	KindAuth       Kind = "auth"       // https servers, by domain
	KindDockerAuth Kind = "dockerAuth" // docker and OCI registries, by registry
)

// The types of KindAuth entries.
const (
	TypeBasic = "basic" // HTTP basic authentication with user and password
	TypeOAuth = "oauth" // a bearer token
)

// Mask replaces a secret in Masked entries.
const Mask = "******"

// Credentials are what an entry sends. Which fields are set depends on
// the entry's type: User and Password for basic, Token for oauth.
type Credentials struct {
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
}

// Entry is one auth file.
type Entry struct {
	Kind Kind
	// Domains are the hosts (host or host:port, lowercase) the entry
	// applies to: an auth entry's domains, a dockerAuth entry's
	// registries.
	Domains []string
	// Type is TypeBasic or TypeOAuth for KindAuth, TypeBasic for
	// KindDockerAuth.
	Type        string
	Credentials Credentials
	// File is the file the entry was read from ("" for Parse).
	File string

	// rank is the index of the entry's directory in LoadDirs' list: the
	// lower, the more important.
	rank int
}

// fileFormat is an auth file as written.
type fileFormat struct {
	RktKind     string       `json:"rktKind"`
	RktVersion  string       `json:"rktVersion"`
	NscnKind    string       `json:"nscnKind"`
	NscnVersion string       `json:"nscnVersion"`
	Domains     []string     `json:"domains"`
	Registries  []string     `json:"registries"`
	Type        string       `json:"type"`
	Credentials *Credentials `json:"credentials"`
}

// Parse reads one auth file. It fails with errdefs.ErrInvalidArgument for
// anything but one complete v1 entry: an unknown kind or type, no domain,
// a domain that is not a host, credentials missing what the type needs.
func Parse(data []byte) (*Entry, error) {
	var f fileFormat
	if err := configdir.Decode(data, &f, "auth entry"); err != nil {
		return nil, err
	}
	kind, version := f.NscnKind, f.NscnVersion
	switch {
	case kind == "" && version == "":
		kind, version = f.RktKind, f.RktVersion
	case f.RktKind != "" || f.RktVersion != "":
		return nil, errdefs.InvalidArgument("auth entry: both nscnKind/nscnVersion and rktKind/rktVersion are set")
	}
	if version != "v1" {
		return nil, errdefs.InvalidArgument("auth entry: version %q is not supported (want v1)", version)
	}
	if f.Credentials == nil {
		return nil, errdefs.InvalidArgument("auth entry: no credentials")
	}
	e := &Entry{Kind: Kind(kind), Type: f.Type, Credentials: *f.Credentials}
	switch e.Kind {
	case KindAuth:
		if len(f.Registries) > 0 {
			return nil, errdefs.InvalidArgument("auth entry: an auth entry names domains, not registries")
		}
		e.Domains = f.Domains
	case KindDockerAuth:
		if len(f.Domains) > 0 || (f.Type != "" && f.Type != TypeBasic) {
			return nil, errdefs.InvalidArgument("auth entry: a dockerAuth entry names registries and has basic credentials only")
		}
		e.Domains, e.Type = f.Registries, TypeBasic
	default:
		return nil, errdefs.InvalidArgument("auth entry: unknown kind %q (want auth or dockerAuth)", kind)
	}
	if len(e.Domains) == 0 {
		return nil, errdefs.InvalidArgument("auth entry: no domains or registries")
	}
	for i, d := range e.Domains {
		d = strings.ToLower(d)
		if err := checkDomain(d); err != nil {
			return nil, err
		}
		e.Domains[i] = d
	}
	c := e.Credentials
	switch e.Type {
	case TypeBasic:
		if c.User == "" || c.Token != "" {
			return nil, errdefs.InvalidArgument("auth entry: basic credentials are a user and a password")
		}
	case TypeOAuth:
		if c.Token == "" || c.User != "" || c.Password != "" {
			return nil, errdefs.InvalidArgument("auth entry: oauth credentials are a token")
		}
	default:
		return nil, errdefs.InvalidArgument("auth entry: unknown type %q (want basic or oauth)", e.Type)
	}
	return e, nil
}

// checkDomain accepts a host or host:port, nothing with a scheme, path,
// user or white space.
func checkDomain(d string) error {
	if d == "" || strings.ContainsAny(d, "/@?#\\ \t\r\n") || strings.Contains(d, "://") {
		return errdefs.InvalidArgument("auth entry: domain %q is not a host name (write example.com or example.com:5000)", d)
	}
	for _, r := range d {
		if r < 0x21 || r > 0x7e {
			return errdefs.InvalidArgument("auth entry: domain %q is not a host name", d)
		}
	}
	return nil
}

// Config is the merged configuration: the entry that applies to each
// domain, by kind.
type Config struct {
	Auth       map[string]*Entry // by domain
	DockerAuth map[string]*Entry // by registry
}

// UserDir returns the user's configuration directory ($XDG_CONFIG_HOME/nscn,
// or ~/.config/nscn), or "" when the user has none.
func UserDir() string {
	d, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "nscn")
}

// DefaultDirs lists the directories nscn reads auth.d from, the most
// important first: the user's, then the local and system ones (the
// --local-config and --system-config flags).
func DefaultDirs(localDir, systemDir string) []string {
	return []string{UserDir(), localDir, systemDir}
}

// Load reads the auth.d of the local and system directories; see LoadDirs.
func Load(localDir, systemDir string) (*Config, error) {
	return LoadDirs(localDir, systemDir)
}

// LoadDirs reads <dir>/auth.d/*.json of each of dirs, the most important
// first: an entry of an earlier directory replaces a later one's domain by
// domain and kind by kind. A missing directory holds no entries; a path
// may be empty. Errors name the file; a bad file is
// errdefs.ErrInvalidArgument.
func LoadDirs(dirs ...string) (*Config, error) {
	c := &Config{Auth: map[string]*Entry{}, DockerAuth: map[string]*Entry{}}
	for rank := len(dirs) - 1; rank >= 0; rank-- {
		dir := dirs[rank]
		if dir == "" {
			continue
		}
		entries, err := loadDir(filepath.Join(dir, Dir))
		if err != nil {
			return nil, err
		}
		seen := map[string]string{} // kind/domain -> file, within this dir
		for _, e := range entries {
			e.rank = rank
			m := c.byKind(e.Kind)
			for _, d := range e.Domains {
				k := string(e.Kind) + "/" + d
				if other, ok := seen[k]; ok {
					return nil, errdefs.InvalidArgument("auth files %s and %s both configure %s %s", other, e.File, e.Kind, d)
				}
				seen[k] = e.File
				m[d] = e
			}
		}
	}
	return c, nil
}

func (c *Config) byKind(k Kind) map[string]*Entry {
	if k == KindDockerAuth {
		return c.DockerAuth
	}
	return c.Auth
}

func loadDir(dir string) ([]*Entry, error) {
	files, err := configdir.Read(dir, "auth configuration")
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, f := range files {
		e, err := Parse(f.Data)
		if err != nil {
			return nil, fmt.Errorf("auth file %s: %w", f.Path, err)
		}
		e.File = f.Path
		out = append(out, e)
	}
	return out, nil
}

// Header returns the Authorization header for an https request to host
// (host or host:port, as in a URL), or nil when no auth entry applies.
// Callers must not send it over plain http. It is an http.Header's
// map, not that type, so that nscn, which reads auth.d's files but sends no
// request, does not link net/http (Documentation/performance.md).
func (c *Config) Header(host string) map[string][]string {
	if c == nil {
		return nil
	}
	e, ok := c.Auth[strings.ToLower(host)]
	if !ok {
		return nil
	}
	h := map[string][]string{}
	switch e.Type {
	case TypeBasic:
		h["Authorization"] = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(e.Credentials.User+":"+e.Credentials.Password))}
	case TypeOAuth:
		h["Authorization"] = []string{"Bearer " + e.Credentials.Token}
	}
	return h
}

// Docker returns the credentials for a registry (host or host:port).
func (c *Config) Docker(registry string) (Credentials, bool) {
	if c == nil {
		return Credentials{}, false
	}
	e, ok := c.DockerAuth[strings.ToLower(registry)]
	if !ok {
		return Credentials{}, false
	}
	return e.Credentials, true
}

// Registry returns the entry that gives a registry (host or host:port) its
// credentials: its dockerAuth entry or the auth entry of that domain,
// whichever comes from the more important directory, and the dockerAuth
// entry when both come from the same one (it was written for registries).
func (c *Config) Registry(registry string) (*Entry, bool) {
	if c == nil {
		return nil, false
	}
	registry = strings.ToLower(registry)
	d, okD := c.DockerAuth[registry]
	a, okA := c.Auth[registry]
	switch {
	case okD && (!okA || d.rank <= a.rank):
		return d, true
	case okA:
		return a, true
	}
	return nil, false
}

// Entries returns the entries in effect, each once, ordered by kind and
// first domain: an entry whose every domain a local entry replaced is
// left out.
func (c *Config) Entries() []*Entry {
	seen := map[*Entry]bool{}
	var out []*Entry
	for _, m := range []map[string]*Entry{c.Auth, c.DockerAuth} {
		for _, e := range m {
			if !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].File < out[j].File
	})
	return out
}

// Masked returns a copy of e with its password and token replaced by Mask
// (an empty one stays empty), for display. The user name is kept: it says
// which account is configured.
func (e *Entry) Masked() Entry {
	m := *e
	m.Domains = append([]string(nil), e.Domains...)
	if m.Credentials.Password != "" {
		m.Credentials.Password = Mask
	}
	if m.Credentials.Token != "" {
		m.Credentials.Token = Mask
	}
	return m
}
