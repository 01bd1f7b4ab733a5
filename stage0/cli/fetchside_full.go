//go:build !nscn_nofetch

package cli

// The fetch side of the command tree: the commands and steps that need the
// network, the signature verifier or the registry client (fetch, trust,
// config's trusted keys, run and prepare of an image the store does not
// hold, app add). nscn-fetch and nscn-grpc are built with it; nscn is built
// with the nscn_nofetch tag, which puts fetchside_lean.go in its place and
// leaves these packages' initialisation out of every nscn process
// (Documentation/performance.md). Without the tag, as go build and go test
// build it, the cli package is whole and never hands a command over.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/authconfig"
	"github.com/nosecone/nscn/internal/oci"
	"github.com/nosecone/nscn/internal/pgp"
	"github.com/nosecone/nscn/internal/regtrust"
	"github.com/nosecone/nscn/stage0/fetch"
	"github.com/nosecone/nscn/stage0/localimage"
	"github.com/nosecone/nscn/stage0/prepare"
	"github.com/nosecone/nscn/stage0/stage1"
	"github.com/nosecone/nscn/store"
)

// storeDecoders decode the zstd layers of the OCI images the stores render
// and extract.
var storeDecoders = fetch.Decoders

// handingOver returns the action of a command that renders or extracts
// stored images: here, the action itself.
func handingOver(action cli.ActionFunc) cli.ActionFunc { return action }

// withFetchSide returns the action of a command that needs the fetch side:
// here, the action itself.
func withFetchSide(action cli.ActionFunc) cli.ActionFunc { return action }

// handOver is nscn's way out when a run or prepare needs an image the
// store does not hold; the fetch side fetched it, so there is nothing to
// hand over.
func handOver(_ context.Context, err error) error { return err }

// deferredLog returns g unchanged: only nscn defers the fetch step's
// messages, to drop them when it hands the command over.
func deferredLog(g *Globals) (*Globals, func()) { return g, func() {} }

// imageFetcher is the fetcher of run, prepare and app add: the network
// fetcher, with the platform of --os and --arch.
func imageFetcher(_ context.Context, g *Globals, s *store.Store, policy localimage.PullPolicy, osName, arch string) (prepare.Fetcher, error) {
	f := newFetcher(g, s, policy)
	if err := setPlatform(f, osName, arch); err != nil {
		return nil, err
	}
	return f, nil
}

// fetchImages is nscn fetch.
func fetchImages(c *cli.Context) error {
	g := globals(c)
	if c.NArg() == 0 {
		return usageErrorf("fetch: at least one IMAGE is required")
	}
	if c.String("signature") != "" && c.NArg() != 1 {
		return usageErrorf("fetch: --signature applies to a single IMAGE")
	}
	policy, err := localimage.ParsePullPolicy(c.String("pull-policy"))
	if err != nil {
		return err
	}
	s, err := openStore(c.Context, g)
	if err != nil {
		return err
	}
	f := newFetcher(g, s, policy)
	if err := setPlatform(f, c.String("os"), c.String("arch")); err != nil {
		return err
	}
	for _, ref := range c.Args().Slice() {
		im, err := f.Fetch(c.Context, localimage.Request{Ref: ref, Signature: c.String("signature")})
		if err != nil {
			return err
		}
		id := im.Key
		if c.Bool("full") {
			id = im.ID
		}
		if _, err := fmt.Fprintln(g.Stdout, id); err != nil {
			return err
		}
	}
	return nil
}

// keystore is the trusted-key store of the config directories.
func keystore(g *Globals) *pgp.Keystore {
	return &pgp.Keystore{LocalDir: g.LocalConfig, SystemDir: g.SystemConfig}
}

// newFetcher builds a fetcher from the global flags.
func newFetcher(g *Globals, s *store.Store, policy fetch.PullPolicy) *fetch.Fetcher {
	if g.Insecure.Image {
		// Once per command, as rkt did, not once per image: a command
		// builds one fetcher.
		g.Log.Warn("signature verification is disabled (--insecure-options=image)")
	}
	return &fetch.Fetcher{
		Store:         s,
		Keys:          keystore(g),
		InsecureImage: g.Insecure.Image,
		InsecureTLS:   g.Insecure.TLS,
		InsecureHTTP:  g.Insecure.HTTP,
		PullPolicy:    policy,
		Progress:      progressWriter(g.Stderr),
		Log:           g.Log,
		DownloadDir:   filepath.Join(g.Dir, "tmp", "downloads"),
		MaxSize:       g.MaxImageSize,
		OCI: fetch.OCIOptions{
			// rkt's auth.d files first (the user's, local, system), then
			// Docker's config.
			Keychain: oci.NewKeychain(authDirs(g)...).WithDocker(),
		},

		TrustKeysFromHTTPS: g.TrustKeysFromHTTPS,
		Auth:               loadAuth(g),
		TagTrust:           loadTagTrust(g),
		Timeline:           g.Timeline,
	}
}

// loadTagTrust reads the registry trust of registries.d. A file that
// cannot be read is reported and the whole policy ignored: tags are then
// refused, the safe way to be wrong (nscn config names the file).
func loadTagTrust(g *Globals) *regtrust.Policy {
	p, err := regtrust.LoadDirs(authDirs(g)...)
	if err != nil {
		g.Log.Warn("registry trust of registries.d not used: tags need a digest or --insecure-options=image", "error", err)
		return nil
	}
	return p
}

// loadAuth reads the credentials of auth.d. A file that cannot be read is
// reported and ignored, so that a mistake there does not stop fetches that
// need no credentials; a request that does gets the server's refusal.
func loadAuth(g *Globals) *authconfig.Config {
	c, err := authconfig.LoadDirs(authDirs(g)...)
	if err != nil {
		g.Log.Warn("credentials of auth.d not used", "error", err)
		return nil
	}
	return c
}

// setPlatform sets the platform picked from OCI image indexes from the
// --os and --arch values.
func setPlatform(f *fetch.Fetcher, osName, arch string) error {
	p, err := oci.ParsePlatform(osName, arch)
	if err != nil {
		return usageErrorf("--os/--arch: %v", err)
	}
	f.OCI.Platform = p
	return nil
}

// NewFetcher returns a fetcher configured from the global flags and the
// configuration directories, drawing no progress bars.
func (s Service) NewFetcher(st *store.Store, policy fetch.PullPolicy) *fetch.Fetcher {
	f := newFetcher(s.g, st, policy)
	f.Progress = nil
	return f
}

func runConfig(c *cli.Context) error {
	g := globals(c)
	if c.NArg() > 0 {
		return usageErrorf("config takes no arguments")
	}
	dirs := []string{g.LocalConfig, g.SystemConfig}
	binDir := ""
	if exe, err := os.Executable(); err == nil {
		binDir = filepath.Dir(exe)
	}
	imageDirs, err := stage1.ImageDirs(dirs, binDir)
	if err != nil {
		return err
	}
	out := configOutput{Stage0: []configEntry{{
		Kind: "paths", Version: "v1",
		Data:            g.Dir,
		Stage1ImageDirs: imageDirs,
		LocalConfigDir:  g.LocalConfig,
		SystemConfigDir: g.SystemConfig,
		UserConfigDir:   g.UserConfig,
	}}}

	s1 := configEntry{Kind: "stage1", Version: "v1"}
	ref, file, ok, err := stage1.Configured(dirs)
	if err != nil {
		return err
	}
	if !ok {
		// The build's default, as run and prepare would find it.
		ref, err = stage1.Choose(stage1.Selection{}, dirs, binDir)
		file = "built-in default (" + stage1.DefaultImage + ")"
		if err != nil {
			s1.Problem = err.Error()
		}
	}
	s1.Stage1Kind, s1.Stage1Location, s1.Source = string(ref.Kind), ref.Value, file
	out.Stage0 = append(out.Stage0, s1)

	auth, err := authconfig.LoadDirs(authDirs(g)...)
	if err != nil {
		return err
	}
	for _, e := range auth.Entries() {
		m := e.Masked()
		ce := configEntry{Kind: string(m.Kind), Version: "v1", Credentials: &m.Credentials, File: m.File}
		if m.Kind == authconfig.KindDockerAuth {
			ce.Registries = m.Domains
		} else {
			ce.Domains, ce.Type = m.Domains, m.Type
		}
		out.Stage0 = append(out.Stage0, ce)
	}

	trust, err := regtrust.LoadDirs(authDirs(g)...)
	if err != nil {
		return err
	}
	for _, e := range trust.Entries {
		out.Stage0 = append(out.Stage0, configEntry{
			Kind: regtrust.Kind, Version: "v1",
			Repositories: e.Repositories, AcceptTags: e.AcceptTags, File: e.File,
		})
	}

	keys, err := keystore(g).List(c.Context)
	if err != nil {
		return err
	}
	for _, k := range keys {
		out.Stage0 = append(out.Stage0, configEntry{
			Kind: "trustedKey", Version: "v1",
			Prefix: k.Prefix, Root: k.Root, Fingerprint: k.Fingerprint, UserIDs: k.UserIDs,
			Source: string(k.Source), Masked: k.Masked, File: k.Path,
		})
	}
	return writeJSON(g.Stdout, out)
}
