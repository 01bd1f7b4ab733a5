package oci

import (
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/nosecone/nscn/internal/authconfig"
)

// hubNames are the names Docker Hub goes by; an auth.d file may use any
// of them, go-containerregistry asks for index.docker.io.
var hubNames = []string{"index.docker.io", "docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

// Keychain gives go-containerregistry the registry credentials of rkt's
// auth.d files, as internal/authconfig reads them (the one parser of
// those files): a registry's dockerAuth entry, or else the auth entry of
// its domain (basic: user and password; oauth: a bearer token). The files
// are read on first use, so that a broken auth.d file fails only the
// fetches that reach a registry.
type Keychain struct {
	dirs []string

	once sync.Once
	err  error
	cfg  *authconfig.Config
}

// NewKeychain returns the keychain of the config directories dirs, the
// most important first (authconfig.DefaultDirs: the user's, then
// --local-config, then --system-config); authconfig.Config.Registry says
// which entry wins.
func NewKeychain(dirs ...string) *Keychain { return &Keychain{dirs: dirs} }

// Resolve implements authn.Keychain over the auth.d files only.
func (k *Keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	k.once.Do(func() { k.cfg, k.err = authconfig.LoadDirs(k.dirs...) })
	if k.err != nil {
		return nil, k.err
	}
	e, ok := registryEntry(k.cfg, target.RegistryStr())
	if !ok {
		return authn.Anonymous, nil
	}
	c := e.Credentials
	if e.Type == authconfig.TypeOAuth {
		return authn.FromConfig(authn.AuthConfig{RegistryToken: c.Token}), nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: c.User, Password: c.Password}), nil
}

// registryEntry is cfg's entry for registry, under any of Docker Hub's
// names for the Hub.
func registryEntry(cfg *authconfig.Config, registry string) (*authconfig.Entry, bool) {
	names := []string{registry}
	for _, h := range hubNames {
		if h == registry {
			names = hubNames
		}
	}
	for _, n := range names {
		if e, ok := cfg.Registry(n); ok {
			return e, true
		}
	}
	return nil, false
}

// WithDocker returns a keychain that asks the auth.d files first and
// Docker's config (~/.docker/config.json, $DOCKER_CONFIG, and the
// credential helpers it names) for the registries they do not name.
func (k *Keychain) WithDocker() authn.Keychain {
	return authn.NewMultiKeychain(k, authn.DefaultKeychain)
}
