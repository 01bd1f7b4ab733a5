package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/nosecone/nscn/internal/errdefs"
)

// AuthDir is the directory of credential files in each config directory,
// as rkt has it.
const AuthDir = "auth.d"

// maxAuthFile bounds an auth.d file: a few entries of a few lines.
const maxAuthFile = 1 << 20

// authFile is one auth.d file, in either of rkt's two kinds:
//
//	{"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"],
//	 "type": "basic", "credentials": {"user": "u", "password": "p"}}
//	{"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"],
//	 "type": "oauth", "credentials": {"token": "t"}}
//	{"rktKind": "dockerAuth", "rktVersion": "v1", "registries": ["quay.io"],
//	 "credentials": {"user": "u", "password": "p"}}
type authFile struct {
	Kind        string   `json:"rktKind"`
	Version     string   `json:"rktVersion"`
	Domains     []string `json:"domains"`
	Registries  []string `json:"registries"`
	Type        string   `json:"type"`
	Credentials struct {
		User     string `json:"user"`
		Password string `json:"password"`
		Token    string `json:"token"`
	} `json:"credentials"`
}

// credential is what an auth.d entry gives a registry.
type credential struct {
	cfg  authn.AuthConfig
	file string // for messages; never the secret
}

// parseAuthFile checks one auth.d file and returns the hosts it covers
// and their credential. dockerAuth entries name registries, auth entries
// domains; nscn uses both for registries, dockerAuth first.
func parseAuthFile(data []byte) (hosts []string, docker bool, cfg authn.AuthConfig, err error) {
	var f authFile
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, false, cfg, errdefs.InvalidArgument("not an auth file: %v", err)
	}
	if f.Version != "v1" {
		return nil, false, cfg, errdefs.InvalidArgument(`"rktVersion" is %q, want "v1"`, f.Version)
	}
	c := f.Credentials
	switch f.Kind {
	case "dockerAuth":
		if len(f.Registries) == 0 || len(f.Domains) > 0 || f.Type != "" {
			return nil, false, cfg, errdefs.InvalidArgument(`a dockerAuth file names "registries" (and no "domains" or "type")`)
		}
		if c.User == "" || c.Password == "" || c.Token != "" {
			return nil, false, cfg, errdefs.InvalidArgument(`a dockerAuth file needs "credentials" with "user" and "password"`)
		}
		hosts, docker, cfg = f.Registries, true, authn.AuthConfig{Username: c.User, Password: c.Password}
	case "auth":
		if len(f.Domains) == 0 || len(f.Registries) > 0 {
			return nil, false, cfg, errdefs.InvalidArgument(`an auth file names "domains" (and no "registries")`)
		}
		switch f.Type {
		case "basic":
			if c.User == "" || c.Password == "" || c.Token != "" {
				return nil, false, cfg, errdefs.InvalidArgument(`a basic auth file needs "credentials" with "user" and "password"`)
			}
			cfg = authn.AuthConfig{Username: c.User, Password: c.Password}
		case "oauth":
			if c.Token == "" || c.User != "" || c.Password != "" {
				return nil, false, cfg, errdefs.InvalidArgument(`an oauth auth file needs "credentials" with "token"`)
			}
			cfg = authn.AuthConfig{RegistryToken: c.Token}
		default:
			return nil, false, cfg, errdefs.InvalidArgument(`"type" is %q, want "basic" or "oauth"`, f.Type)
		}
		hosts = f.Domains
	default:
		return nil, false, cfg, errdefs.InvalidArgument(`"rktKind" is %q, want "auth" or "dockerAuth"`, f.Kind)
	}
	for i, h := range hosts {
		h = normalHost(h)
		if h == "" || strings.ContainsAny(h, "/ \t\n") {
			return nil, false, cfg, errdefs.InvalidArgument("%q is not a host name", hosts[i])
		}
		hosts[i] = h
	}
	return hosts, docker, cfg, nil
}

// normalHost folds Docker Hub's names into one and lowercases the rest.
func normalHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "index.docker.io"
	}
	return h
}

// Keychain finds registry credentials in rkt's auth.d files and, for
// registries they do not name, in Docker's config (~/.docker/config.json,
// $DOCKER_CONFIG, and the credential helpers it names). The files are read
// on first use, so that a broken auth.d file fails only the fetches that
// need credentials.
type Keychain struct {
	dirs []string

	once  sync.Once
	err   error
	hosts map[string]credential
}

// NewKeychain returns the keychain of the config directories dirs, the
// most important first (the user's, then --local-config, then
// --system-config): the first directory that names a registry gives its
// credentials, from a dockerAuth entry if it has one, else from an auth
// entry. Within a directory the files are read in name order, and a later
// file's entry for a host replaces an earlier one's.
func NewKeychain(dirs ...string) *Keychain { return &Keychain{dirs: dirs} }

// DefaultAuthDirs lists the config directories searched for auth.d, the
// most important first: the user's ($XDG_CONFIG_HOME/nscn, or
// ~/.config/nscn), then the local and system ones.
func DefaultAuthDirs(local, system string) []string {
	var dirs []string
	if d, err := os.UserConfigDir(); err == nil {
		dirs = append(dirs, filepath.Join(d, "nscn"))
	}
	return append(dirs, local, system)
}

func (k *Keychain) load() error {
	k.once.Do(func() {
		k.hosts = map[string]credential{}
		for _, d := range k.dirs {
			if err := k.loadDir(d); err != nil {
				k.err = err
				return
			}
		}
	})
	return k.err
}

func (k *Keychain) loadDir(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, AuthDir, "*.json"))
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(dir, AuthDir), err)
	}
	sort.Strings(files)
	docker, domain := map[string]credential{}, map[string]credential{}
	for _, file := range files {
		data, err := readLimited(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		hosts, isDocker, cfg, err := parseAuthFile(data)
		if err != nil {
			return fmt.Errorf("auth file %s: %w", file, err)
		}
		for _, h := range hosts {
			if isDocker {
				docker[h] = credential{cfg: cfg, file: file}
			} else {
				domain[h] = credential{cfg: cfg, file: file}
			}
		}
	}
	// An earlier (more important) directory keeps its hosts; within a
	// directory a dockerAuth entry beats an auth one.
	for _, m := range []map[string]credential{docker, domain} {
		for h, c := range m {
			if _, ok := k.hosts[h]; !ok {
				k.hosts[h] = c
			}
		}
	}
	return nil
}

func readLimited(file string) ([]byte, error) {
	f, err := os.Open(file) //nolint:gosec // G304: a file of the config directories
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxAuthFile+1))
	if err != nil {
		return nil, fmt.Errorf("read auth file %s: %w", file, err)
	}
	if len(data) > maxAuthFile {
		return nil, errdefs.InvalidArgument("auth file %s is over %d KiB", file, maxAuthFile>>10)
	}
	return data, nil
}

// Resolve implements authn.Keychain over the auth.d files only.
func (k *Keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if err := k.load(); err != nil {
		return nil, err
	}
	if c, ok := k.hosts[normalHost(target.RegistryStr())]; ok {
		return authn.FromConfig(c.cfg), nil
	}
	return authn.Anonymous, nil
}

// WithDocker returns a keychain that asks the auth.d files first and
// Docker's config for the registries they do not name.
func (k *Keychain) WithDocker() authn.Keychain {
	return authn.NewMultiKeychain(k, authn.DefaultKeychain)
}
