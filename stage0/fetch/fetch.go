// Package fetch brings images into the store: from a local path or file://
// URL, from http(s), by image ID, by name from what the store already
// holds, and OCI and Docker images from registries, layouts and archives
// (oci.go, Documentation/images.md). It checks signatures against the trusted keys unless told not to,
// honours the pull policy and the HTTP cache state, and reports progress.
//
// A signature is checked over the image file as fetched, before anything
// of the image is decompressed or written to the store: a signature no
// trusted key made is refused before the image is read or downloaded, and
// one that does not match costs one read of the compressed file. See
// verify.go and Documentation/signing-and-verification.md.
//
// An image name not satisfied by the store is found by appc discovery
// (discovery.go, Documentation/discovery.md), and so are the dependencies
// of an image fetched that way.
//
// It runs in stage0 and needs write access to the data directory only.
package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/aci/decoders"
	"github.com/nosecone/nscn/internal/authconfig"
	"github.com/nosecone/nscn/internal/download"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/internal/oci"
	"github.com/nosecone/nscn/internal/pgp"
	"github.com/nosecone/nscn/internal/progress"
	"github.com/nosecone/nscn/internal/regtrust"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/stage0/localimage"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/index"
)

// PullPolicy says when to go to the network for an image.
type PullPolicy = localimage.PullPolicy

// The pull policies, as rkt has them.
const (
	PullNew    = localimage.PullNew    // use the store's copy when there is one
	PullUpdate = localimage.PullUpdate // revalidate remote images (ETag, max-age)
	PullNever  = localimage.PullNever  // only the store
)

// ParsePullPolicy checks a --pull-policy value.
func ParsePullPolicy(s string) (PullPolicy, error) { return localimage.ParsePullPolicy(s) }

// Decoders are every decoder an image as fetched may need: an ACI may be
// gzip, bzip2, xz or zstd compressed, an OCI layer gzip or zstd. nscn-fetch
// gives them to the stores it opens too (stage0/cli).
var Decoders = aci.Decoders{Bzip2: decoders.Bzip2, XZ: decoders.XZ, Zstd: decoders.Zstd}

// Fetcher holds what every fetch needs.
type Fetcher struct {
	Store *store.Store
	Keys  *pgp.Keystore
	// Insecure relaxations chosen by the user.
	InsecureImage bool // no signature check
	InsecureTLS   bool
	InsecureHTTP  bool
	PullPolicy    PullPolicy
	// Progress receives progress bars (stderr); nil draws none.
	Progress io.Writer
	Log      *slog.Logger
	// DownloadDir keeps partial downloads so a broken one resumes.
	DownloadDir string
	// MaxSize bounds an image's uncompressed size (0: unlimited); it is
	// enforced while the image streams in, and the error names the
	// --max-image-size flag that sets it.
	MaxSize int64
	// TrustKeysFromHTTPS trusts, when an image is fetched by discovery and
	// no key is trusted for its name, the keys its discovery page names
	// over https (--trust-keys-from-https), as rkt does.
	TrustKeysFromHTTPS bool
	// Client replaces the built-in HTTP client of every request (tests:
	// a client that reaches a test server whatever the host); nil is the
	// default.
	Client *http.Client
	// Auth holds the credentials of auth.d, sent with https requests to
	// the hosts they name (discovery pages, images, signatures, keys);
	// nil sends none.
	Auth *authconfig.Config

	// OCI holds what OCI and Docker images need (platform, credentials).
	OCI OCIOptions
	// TagTrust is the operator's registry trust (registries.d): a tag of a
	// repository it names is taken without a digest, as with
	// InsecureImage for that image alone. nil trusts no tag.
	TagTrust *regtrust.Policy
	// Timeline marks the phases of a registry pull (--debug,
	// NSCN_TIMELINE); nil marks nothing.
	Timeline *timeline.Timeline

	// Seams for tests; nil means os.Open and Store.Import.
	open        func(name string) (imageFile, error)
	importImage func(ctx context.Context, r io.Reader, opts store.ImportOptions) (*index.Image, error)
}

// imageFile is what a fetch needs of an open image file: an *os.File, or a
// test's wrapper that counts what is read.
type imageFile interface {
	io.ReadSeekCloser
	Stat() (os.FileInfo, error)
}

// Request is one image to fetch.
type Request = localimage.Request

// Fetch brings one image into the store and returns its entry.
func (f *Fetcher) Fetch(ctx context.Context, req Request) (*index.Image, error) {
	if req.PullPolicy != "" || req.Trusted {
		c := *f
		if req.PullPolicy != "" {
			c.PullPolicy = req.PullPolicy
		}
		c.InsecureImage = c.InsecureImage || req.Trusted
		req.PullPolicy, req.Trusted = "", false
		return c.Fetch(ctx, req)
	}
	ref := req.Ref
	switch {
	case ref == "":
		return nil, errdefs.InvalidArgument("empty image reference")
	case strings.HasPrefix(strings.ToLower(ref), "sha512-"):
		return f.Store.Get(ctx, ref)
	case oci.IsReference(ref):
		return f.fetchOCI(ctx, ref)
	case strings.HasPrefix(ref, "file://"):
		u, err := url.Parse(ref)
		if err != nil {
			return nil, errdefs.InvalidArgument("parse image URL %q: %v", ref, err)
		}
		return f.fetchFile(ctx, u.Path, req.Signature)
	case strings.HasPrefix(ref, "http://"), strings.HasPrefix(ref, "https://"):
		return f.fetchRemote(ctx, ref, req.Signature, nil)
	case strings.Contains(ref, "://"):
		return nil, errdefs.Newf(errdefs.ErrNotImplemented, "image %s: unsupported URL scheme (nscn fetches from paths, file://, http://, https://, docker://, oci:, oci-archive: and docker-archive:)", ref)
	}
	if st, err := os.Stat(ref); err == nil && !st.IsDir() {
		return f.fetchFile(ctx, ref, req.Signature)
	}
	if strings.HasSuffix(ref, ".aci") || strings.HasPrefix(ref, ".") || strings.HasPrefix(ref, "/") {
		return nil, errdefs.NotFound("image file %s does not exist", ref)
	}
	return f.fetchByName(ctx, ref)
}

// fetchByName resolves an appc image name: from the store when the pull
// policy lets a stored image do (new, never), else by appc discovery
// (discovery.go).
func (f *Fetcher) fetchByName(ctx context.Context, ref string) (*index.Image, error) {
	name, labels, err := localimage.ParseName(ref)
	if err != nil {
		return nil, errdefs.InvalidArgument("image %q is neither a file, a URL, an image ID nor an image name: %v", ref, err)
	}
	im, err := f.Store.FindByName(ctx, name, labels)
	switch {
	case err == nil && f.PullPolicy != PullUpdate:
		return im, nil
	case err != nil && !errors.Is(err, errdefs.ErrNotFound):
		return nil, err
	case err != nil && f.PullPolicy == PullNever:
		return nil, fmt.Errorf("%w (the pull policy is never, so it is not discovered)", err)
	}
	return f.discover(ctx, f.newDiscoverer(), wanted{name: name, labels: labels}, nil)
}

func (f *Fetcher) fetchFile(ctx context.Context, path, sig string) (*index.Image, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	if f.PullPolicy == PullNever {
		return nil, errdefs.FailedPrecondition("image file %s: the pull policy is never, so only images already in the store can be used", path)
	}
	// A file imported before and unchanged since is not decompressed and
	// hashed again (localimage.StoredFile).
	st, err := os.Stat(abs)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("image file %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("stat image %s: %w", path, err)
	}
	// rkt said where each image came from; scripts and people grep for it.
	f.logger().Info("using image from file " + abs)
	key, validator := localimage.FileKey(abs), localimage.FileValidator(st)
	if im, err := localimage.StoredFile(ctx, f.Store, abs, st, f.InsecureImage); err == nil && im != nil {
		f.logger().Debug("image file unchanged since its import", "path", abs, "image", im.Key)
		return im, nil
	}
	var v *pgp.Verifier
	if !f.InsecureImage {
		if sig == "" {
			sig = abs + ".asc"
		}
		if v, err = f.newVerifier(ctx, sig, abs); err != nil {
			return nil, err
		}
	}
	remote := &index.Remote{URL: key, ETag: validator, DownloadTime: time.Now().UTC()}
	return f.importFile(ctx, abs, abs, v, remote, nil)
}

// newVerifier reads the detached signature of image from the path or URL
// sig, with the trusted keys. It reads nothing of the image: a malformed
// signature, or one that no trusted key made, is refused before the image
// is read or downloaded.
func (f *Fetcher) newVerifier(ctx context.Context, sig, image string) (*pgp.Verifier, error) {
	data, err := f.readSignature(ctx, sig, image)
	if err != nil {
		return nil, err
	}
	v, err := f.Keys.NewVerifier(ctx, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", image, err)
	}
	return v, nil
}

// readSignature loads a detached signature from a path or URL.
func (f *Fetcher) readSignature(ctx context.Context, sig, image string) ([]byte, error) {
	var data []byte
	var err error
	if strings.HasPrefix(sig, "http://") || strings.HasPrefix(sig, "https://") {
		data, err = download.Get(ctx, sig, f.withAuth(f.downloadOptions("signature"), sig))
	} else {
		data, err = os.ReadFile(strings.TrimPrefix(sig, "file://"))
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.FailedPrecondition("image %s is not signed: no signature at %s (use --signature, or --insecure-options=image to fetch it unverified)", image, sig)
	}
	if err != nil {
		return nil, fmt.Errorf("read signature of %s: %w", image, err)
	}
	return data, nil
}

// acceptFunc decides, once an image was read and its signature checked and
// before it is committed, whether it is the image asked for; it may fetch
// what the image needs (its dependencies). An error refuses the image.
type acceptFunc func(ctx context.Context, m *schema.ImageManifest) error

// importFile stores the ACI at path. With a verifier, the signature is
// checked over the file's bytes, as fetched, before anything is
// decompressed or written (see verifyFile), and again tied to what is
// imported before it is committed. accept, when set, runs after that.
func (f *Fetcher) importFile(ctx context.Context, path, source string, v *pgp.Verifier, remote *index.Remote, accept acceptFunc) (*index.Image, error) {
	open := f.open
	if open == nil {
		open = func(name string) (imageFile, error) { return os.Open(name) } //nolint:gosec // G304: the image file the user named, or our download of it
	}
	file, err := open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("image file %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", path, err)
	}
	defer func() { _ = file.Close() }()
	st, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat image %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, errdefs.InvalidArgument("image %s is a directory", path)
	}
	opts := store.ImportOptions{Source: source, Remote: remote, MaxSize: f.MaxSize, Decoders: Decoders}
	var src io.Reader = file
	if v != nil {
		ok, err := f.verifyFile(ctx, file, st.Size(), source, v)
		if err != nil {
			return nil, err
		}
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("read image %s: %w", source, err)
		}
		// The file is read again to import it: hash what is read, so that
		// what is committed is what was verified even if the file changed
		// in between.
		h := sha256.New()
		src = io.TeeReader(file, h)
		opts.Check = func(ctx context.Context, m *schema.ImageManifest) (string, error) {
			// The decompressor may stop before trailing bytes.
			if _, err := io.Copy(h, file); err != nil {
				return "", fmt.Errorf("read image %s: %w", source, err)
			}
			if !bytes.Equal(h.Sum(nil), ok.sum) {
				return "", errdefs.PermissionDenied("image %s changed while it was imported, after its signature was verified; fetch it again", source)
			}
			if err := ok.signer.Authorize(m.Name.String()); err != nil {
				return "", err
			}
			f.logger().Info("signature verified", "image", m.Name.String(), "key", ok.signer.Fingerprint)
			if accept != nil {
				if err := accept(ctx, m); err != nil {
					return "", err
				}
			}
			return ok.signer.Fingerprint, nil
		}
	} else if accept != nil {
		opts.Check = func(ctx context.Context, m *schema.ImageManifest) (string, error) {
			return "", accept(ctx, m)
		}
	}
	var bar *progress.Bar
	if f.Progress != nil {
		bar = progress.New(f.Progress, "import "+filepath.Base(source), st.Size())
		src = bar.Wrap(src)
	}
	imp := f.importImage
	if imp == nil {
		imp = f.Store.Import
	}
	im, err := imp(ctx, src, opts)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", source, f.explainLimit(err))
	}
	return im, nil
}

func (f *Fetcher) fetchRemote(ctx context.Context, u, sig string, accept acceptFunc) (*index.Image, error) {
	if strings.HasPrefix(u, "http://") && !f.InsecureHTTP {
		return nil, errdefs.PermissionDenied("image %s: plain http is refused; use https or --insecure-options=http", u)
	}
	cached, err := f.cachedRemote(ctx, u)
	if err != nil {
		return nil, err
	}
	switch {
	case f.PullPolicy == PullNever && cached == nil:
		return nil, errdefs.NotFound("image %s is not in the store and the pull policy is never", u)
	case f.PullPolicy == PullNever, f.PullPolicy == PullNew && cached != nil:
		return cached.image, nil
	case cached != nil && cached.remote.Fresh(time.Now()):
		f.logger().Debug("using cached image, max-age not elapsed", "url", u)
		return cached.image, nil
	}

	var v *pgp.Verifier
	if !f.InsecureImage {
		if sig == "" {
			sig = u + ".asc"
		}
		if v, err = f.newVerifier(ctx, sig, u); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(f.DownloadDir, 0o700); err != nil {
		return nil, fmt.Errorf("create download dir: %w", err)
	}
	sum := sha256.Sum256([]byte(u))
	partial := filepath.Join(f.DownloadDir, hex.EncodeToString(sum[:16])+".aci")
	opts := f.withAuth(f.downloadOptions(filepath.Base(u)), u)
	if cached != nil {
		opts.ETag = cached.remote.ETag
	}
	// Two fetches of one URL share the partial file; take turns.
	l, err := lock.ExclusiveLock(ctx, partial+".lock", lock.RegularFile)
	if err != nil {
		return nil, fmt.Errorf("lock download of %s: %w", u, err)
	}
	defer func() { _ = l.Close() }()
	if again, err := f.cachedRemote(ctx, u); err == nil && again != nil && cached == nil {
		// Another process fetched it while we waited.
		return again.image, nil
	}
	res, err := download.Fetch(ctx, u, partial, opts)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if res.NotModified && cached != nil {
		cached.remote.DownloadTime = now
		cached.remote.MaxAge = res.MaxAge
		if err := f.Store.TouchRemote(ctx, cached.remote); err != nil {
			return nil, err
		}
		f.logger().Debug("image not modified", "url", u)
		return cached.image, nil
	}
	remote := &index.Remote{URL: u, ETag: res.ETag, MaxAge: res.MaxAge, DownloadTime: now}
	if v != nil {
		remote.SignatureURL = sig
	}
	im, err := f.importFile(ctx, partial, u, v, remote, accept)
	// The download is consumed either way: a bad image must not be
	// "resumed" next time.
	download.Discard(partial)
	return im, err
}

type cachedImage struct {
	remote *index.Remote
	image  *index.Image
}

// cachedRemote returns the stored image of a URL when both the remote entry
// and its image are present.
func (f *Fetcher) cachedRemote(ctx context.Context, u string) (*cachedImage, error) {
	r, im, err := f.Store.RemoteImage(ctx, u)
	if err != nil || r == nil || im == nil {
		return nil, err
	}
	return &cachedImage{remote: r, image: im}, nil
}

func (f *Fetcher) downloadOptions(label string) download.Options {
	return download.Options{
		Client:       f.Client,
		InsecureHTTP: f.InsecureHTTP,
		InsecureTLS:  f.InsecureTLS,
		Progress:     f.Progress,
		Label:        label,
	}
}

// withAuth adds to opts the credentials auth.d has for rawURL's host,
// when it is an https URL.
func (f *Fetcher) withAuth(opts download.Options, rawURL string) download.Options {
	if u, err := url.Parse(rawURL); err == nil && u.Scheme == "https" {
		if h := f.Auth.Header(u.Host); h != nil {
			opts.Header = h
		}
	}
	return opts
}

func (f *Fetcher) logger() *slog.Logger {
	if f.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Log
}
