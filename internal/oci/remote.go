package oci

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/nosecone/nscn/internal/download"
	"github.com/nosecone/nscn/internal/errdefs"
)

// RegistryOptions say how to talk to registries.
type RegistryOptions struct {
	// InsecureHTTP allows plain http (--insecure-options=http). Without it
	// every http request is refused before a connection is made, loopback
	// and private addresses included (go-containerregistry would otherwise
	// use http for those on its own).
	InsecureHTTP bool
	// InsecureTLS skips certificate verification (--insecure-options=tls).
	InsecureTLS bool
	// RootCAs replaces the system roots when set (tests).
	RootCAs *x509.CertPool
	// Keychain finds credentials; nil means anonymous.
	Keychain authn.Keychain
	Log      *slog.Logger
}

// Registry is a session with one repository of a registry: authenticated
// (anonymous token, basic or bearer, as the registry asks) once, then used
// for the manifests and every blob.
type Registry struct {
	repo      name.Repository
	transport http.RoundTripper
	opts      RegistryOptions
	refused   *httpRefuser
}

// errPlainHTTP is what the refusing transport returns.
var errPlainHTTP = errors.New("plain http refused")

// httpRefuser fails every http:// request, and remembers that it did, to
// explain a failed ping.
type httpRefuser struct {
	inner http.RoundTripper
	hit   bool
}

func (h *httpRefuser) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		h.hit = true
		return nil, errdefs.With(errdefs.ErrPermissionDenied, fmt.Errorf("%s: %w (use https, or --insecure-options=http)", r.URL.Redacted(), errPlainHTTP))
	}
	return h.inner.RoundTrip(r)
}

// Connect opens a session with the repository of ref.
func Connect(ctx context.Context, repo name.Repository, o RegistryOptions) (*Registry, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs}
	if o.InsecureTLS {
		base.TLSClientConfig.InsecureSkipVerify = true // the user asked for it with --insecure-options=tls
	}
	r := &Registry{repo: repo, opts: o}
	var rt http.RoundTripper = base
	if o.InsecureHTTP {
		// go-containerregistry tries https first and falls back to http
		// only for registries marked insecure.
		reg, err := name.NewRegistry(repo.RegistryStr(), name.Insecure)
		if err != nil {
			return nil, errdefs.InvalidArgument("registry %s: %v", repo.RegistryStr(), err)
		}
		repo = reg.Repo(repo.RepositoryStr())
		r.repo = repo
	} else {
		r.refused = &httpRefuser{inner: base}
		rt = r.refused
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.NewMultiKeychain()
	}
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, fmt.Errorf("find credentials for %s: %w", repo.RegistryStr(), err)
	}
	t, err := transport.NewWithContext(ctx, repo.Registry, auth, rt, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, r.explain(fmt.Sprintf("connect to registry %s", repo.RegistryStr()), err)
	}
	r.transport = t
	return r, nil
}

// explain classifies a registry error: plain http refused, credentials
// refused, missing manifests, or the registry unreachable.
func (r *Registry) explain(what string, err error) error {
	if r.refused != nil && r.refused.hit && !errors.Is(err, errdefs.ErrPermissionDenied) {
		return errdefs.PermissionDenied("%s: the registry answers only plain http, which is refused without --insecure-options=http (%v)", what, err)
	}
	var cerr *tls.CertificateVerificationError
	if errors.As(err, &cerr) {
		return errdefs.With(errdefs.ErrPermissionDenied, fmt.Errorf("%s: the registry's TLS certificate does not verify (skip the check with --insecure-options=tls): %w", what, err))
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return errdefs.With(errdefs.ErrPermissionDenied, fmt.Errorf("%s: access denied (credentials go in auth.d or ~/.docker/config.json, see Documentation/images.md): %w", what, err))
		case http.StatusNotFound:
			return errdefs.With(errdefs.ErrNotFound, fmt.Errorf("%s: %w", what, err))
		}
	}
	if errors.Is(err, errdefs.ErrPermissionDenied) || errors.Is(err, errdefs.ErrInvalidArgument) || errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("%s: %w", what, err))
}

func (r *Registry) remoteOpts(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithTransport(r.transport)}
}

// Resolve returns the digest ref names now (a HEAD request; a GET when
// the registry does not answer HEAD).
func (r *Registry) Resolve(ctx context.Context, ref name.Reference) (v1.Hash, error) {
	ref = r.rebase(ref)
	d, err := remote.Head(ref, r.remoteOpts(ctx)...)
	if err == nil {
		return d.Digest, nil
	}
	desc, gerr := remote.Get(ref, r.remoteOpts(ctx)...)
	if gerr != nil {
		return v1.Hash{}, r.explain("resolve "+ref.String(), gerr)
	}
	return digestOf(desc.Manifest), nil
}

// rebase moves ref to the session's repository (which carries the
// insecure flag when http is allowed).
func (r *Registry) rebase(ref name.Reference) name.Reference {
	if d, ok := ref.(name.Digest); ok {
		return r.repo.Digest(d.DigestStr())
	}
	return r.repo.Tag(ref.Identifier())
}

// Image fetches the manifest ref names and, for an index, the manifest of
// platform p in it, then the config. Each is checked against its digest:
// a manifest against the digest ref pins (or, for a tag, the digest it is
// given under), an index entry against the index, the config against the
// manifest.
func (r *Registry) Image(ctx context.Context, ref name.Reference, p Platform) (*Image, error) {
	ref = r.rebase(ref)
	desc, err := remote.Get(ref, r.remoteOpts(ctx)...)
	if err != nil {
		return nil, r.explain("fetch manifest of "+ref.String(), err)
	}
	raw := desc.Manifest
	top := digestOf(raw)
	if d, ok := ref.(name.Digest); ok {
		want, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return nil, errdefs.InvalidArgument("reference %s: %v", ref, err)
		}
		if err := checkDigest(raw, want, "manifest of "+ref.String()); err != nil {
			return nil, err
		}
	}
	mt := desc.MediaType
	if mt == "" {
		mt = mediaTypeOf(raw)
	}
	if mt.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, errdefs.InvalidArgument("index %s: %v", ref, err)
		}
		d, err := pick(idx, p, "image index "+ref.String())
		if err != nil {
			return nil, err
		}
		child := r.repo.Digest(d.Digest.String())
		cdesc, err := remote.Get(child, r.remoteOpts(ctx)...)
		if err != nil {
			return nil, r.explain("fetch manifest of "+child.String(), err)
		}
		if err := checkDigest(cdesc.Manifest, d.Digest, "manifest of "+child.String()); err != nil {
			return nil, err
		}
		raw, mt = cdesc.Manifest, cdesc.MediaType
	}
	im, err := newImage(raw, digestOf(raw), mt, func(cd v1.Descriptor) ([]byte, error) {
		return r.smallBlob(ctx, cd)
	})
	if err != nil {
		return nil, err
	}
	im.IndexDigest = top
	return im, nil
}

// BlobURL is where a blob of the repository is.
func (r *Registry) BlobURL(d v1.Hash) string {
	u := url.URL{Scheme: "https", Host: r.repo.RegistryStr(), Path: "/v2/" + r.repo.RepositoryStr() + "/blobs/" + d.String()}
	return u.String()
}

// Client is an HTTP client that authenticates to the registry (and
// switches to http when the registry was found to speak only that, which
// only happens with InsecureHTTP).
func (r *Registry) Client() *http.Client { return &http.Client{Transport: r.transport} }

// smallBlob fetches a config blob.
func (r *Registry) smallBlob(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	if d.Size > maxManifestSize {
		return nil, errdefs.InvalidArgument("image config %s is %d bytes, over the %d MiB limit", d.Digest, d.Size, maxManifestSize>>20)
	}
	b, err := download.Get(ctx, r.BlobURL(d.Digest), download.Options{Client: r.Client(), InsecureHTTP: r.opts.InsecureHTTP, MaxSize: maxManifestSize})
	if err != nil {
		return nil, r.explain("fetch image config "+d.Digest.String(), err)
	}
	return b, nil
}

// FetchBlob downloads a blob into partial, resuming what an earlier,
// broken download of it left there. The caller checks the digest (see
// store/ociblob Adopt).
func (r *Registry) FetchBlob(ctx context.Context, d v1.Hash, partial string, o download.Options) (*download.Result, error) {
	o.Client = r.Client()
	o.InsecureHTTP = r.opts.InsecureHTTP
	res, err := download.Fetch(ctx, r.BlobURL(d), partial, o)
	if err != nil {
		return nil, r.explain("download blob "+d.String(), err)
	}
	return res, nil
}
