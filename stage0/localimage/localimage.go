// Package localimage answers image references from what the store already
// holds: an image ID, an image name with labels, and a local ACI file
// imported before and unchanged since. It is the part of fetching that
// needs no network, no signature verifier and no registry client, so that
// the nscn binary, which links this package and not package fetch, starts
// without their package initialisation (Documentation/performance.md).
// Whatever it cannot answer from the store is an ErrNotStored error: the
// caller hands the command to nscn-fetch, whose fetch.Fetcher can.
//
// It also holds what both sides share: the pull policies and the Request
// type, and the validator that recognises an unchanged local file.
//
// It runs in stage0 and only reads the store.
package localimage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/appc/spec/schema/common"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/index"
)

// PullPolicy says when to go to the network for an image.
type PullPolicy string

// The pull policies, as rkt has them.
const (
	PullNew    PullPolicy = "new"    // use the store's copy when there is one
	PullUpdate PullPolicy = "update" // revalidate remote images (ETag, max-age)
	PullNever  PullPolicy = "never"  // only the store
)

// ParsePullPolicy checks a --pull-policy value.
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch p := PullPolicy(s); p {
	case PullNew, PullUpdate, PullNever:
		return p, nil
	}
	return "", errdefs.InvalidArgument("unknown pull policy %q (want new, update or never)", s)
}

// Request is one image to fetch.
type Request struct {
	Ref       string // path, file:// or http(s) URL, image ID, or name[:version][,label=value…]
	Signature string // path or URL of the detached signature; default Ref + ".asc"
	// PullPolicy, when set, replaces the fetcher's for this image (the
	// stage1's, which prepare chooses from how it was named).
	PullPolicy PullPolicy
	// Trusted skips the signature check for this image alone: the stage1
	// image that ships with nscn.
	Trusted bool
}

// ErrNotStored marks a reference the store cannot answer alone: fetching
// it needs the network, a signature check or an import, which nscn-fetch
// does.
var ErrNotStored = errors.New("image not in the store")

// Resolver answers requests from the store, as fetch.Fetcher does for
// the same requests when the store holds the image: same image, same
// messages, same errors. Anything else is ErrNotStored.
type Resolver struct {
	Store *store.Store
	// InsecureImage is --insecure-options=image: a file imported without
	// a signature check is reused only when no check is asked for now.
	InsecureImage bool
	PullPolicy    PullPolicy
	Log           *slog.Logger
}

// Fetch returns the stored image req names, or an ErrNotStored error.
func (r *Resolver) Fetch(ctx context.Context, req Request) (*index.Image, error) {
	policy, insecure := r.PullPolicy, r.InsecureImage || req.Trusted
	if req.PullPolicy != "" {
		policy = req.PullPolicy
	}
	ref := req.Ref
	switch {
	case ref == "":
		return nil, errdefs.InvalidArgument("empty image reference")
	case strings.HasPrefix(strings.ToLower(ref), "sha512-"):
		return r.Store.Get(ctx, ref)
	case IsOCIReference(ref), strings.HasPrefix(ref, "http://"), strings.HasPrefix(ref, "https://"):
		return nil, notStored(ref)
	case strings.HasPrefix(ref, "file://"):
		u, err := url.Parse(ref)
		if err != nil {
			return nil, errdefs.InvalidArgument("parse image URL %q: %v", ref, err)
		}
		return r.file(ctx, u.Path, policy, insecure)
	case strings.Contains(ref, "://"):
		return nil, errdefs.Newf(errdefs.ErrNotImplemented, "image %s: unsupported URL scheme (nscn fetches from paths, file://, http://, https://, docker://, oci:, oci-archive: and docker-archive:)", ref)
	}
	if st, err := os.Stat(ref); err == nil && !st.IsDir() {
		return r.file(ctx, ref, policy, insecure)
	}
	if strings.HasSuffix(ref, ".aci") || strings.HasPrefix(ref, ".") || strings.HasPrefix(ref, "/") {
		return nil, errdefs.NotFound("image file %s does not exist", ref)
	}
	name, labels, err := ParseName(ref)
	if err != nil {
		return nil, errdefs.InvalidArgument("image %q is neither a file, a URL, an image ID nor an image name: %v", ref, err)
	}
	im, err := r.Store.FindByName(ctx, name, labels)
	switch {
	case err == nil && policy != PullUpdate:
		return im, nil
	case err != nil && !errors.Is(err, errdefs.ErrNotFound):
		return nil, err
	case err != nil && policy == PullNever:
		return nil, fmt.Errorf("%w (the pull policy is never, so it is not discovered)", err)
	}
	return nil, notStored(ref)
}

// file answers a local ACI imported before and unchanged since.
func (r *Resolver) file(ctx context.Context, path string, policy PullPolicy, insecure bool) (*index.Image, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	if policy == PullNever {
		return nil, errdefs.FailedPrecondition("image file %s: the pull policy is never, so only images already in the store can be used", path)
	}
	st, err := os.Stat(abs)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("image file %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("stat image %s: %w", path, err)
	}
	im, err := StoredFile(ctx, r.Store, abs, st, insecure)
	if err != nil || im == nil {
		// fetch.Fetcher imports the file again when its record cannot
		// be read.
		return nil, notStored(path)
	}
	// rkt said where each image came from; scripts and people grep for it.
	r.logger().Info("using image from file " + abs)
	r.logger().Debug("image file unchanged since its import", "path", abs, "image", im.Key)
	return im, nil
}

// StoredFile returns the image imported from the file abs (whose stat is
// st) when the file is unchanged since (same device, inode, size and
// modification time): it is not decompressed and hashed again, which is
// most of the cost of running a pod from a local ACI, the stage1's
// included. An image imported without a signature check is reused only
// when insecure says no check is asked for now. nil: not stored.
func StoredFile(ctx context.Context, s *store.Store, abs string, st os.FileInfo, insecure bool) (*index.Image, error) {
	rm, im, err := s.RemoteImage(ctx, FileKey(abs))
	if err != nil || rm == nil || im == nil {
		return nil, err
	}
	if rm.ETag != FileValidator(st) || (!insecure && im.SignedBy == "") {
		return nil, nil
	}
	return im, nil
}

// FileKey is the store's remote key of a local file, by absolute path.
func FileKey(abs string) string { return "file://" + abs }

// FileValidator identifies a version of a local file without reading it.
func FileValidator(st os.FileInfo) string {
	var dev, ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		dev, ino = uint64(sys.Dev), sys.Ino //nolint:unconvert // Stat_t.Dev is uint32 on some architectures (mips)
	}
	return fmt.Sprintf("file:%d:%d:%d:%d", dev, ino, st.Size(), st.ModTime().UnixNano())
}

func notStored(ref string) error {
	return fmt.Errorf("image %s: %w", ref, ErrNotStored)
}

func (r *Resolver) logger() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// OCI transports, as package oci names them (oci.IsReference, which this
// must agree with: a test checks).
var ociTransports = []string{"docker:", "oci:", "oci-archive:", "docker-archive:"}

// IsOCIReference says whether s names an OCI or Docker image
// (docker://…, oci:…, oci-archive:…, docker-archive:…).
func IsOCIReference(s string) bool {
	for _, p := range ociTransports {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// ParseName parses an appc image name as the command line writes it,
// name[:version][,label=value…] (example.com/app:1.0,
// example.com/app,version=1.0,arch=amd64), into the name and its labels.
// It reads the string as appc's discovery.NewAppFromString does (a fuzz
// test holds them to the same answers), without linking appc's discovery
// client; the os and arch labels are kept only when ref writes them (an
// older appc parser filled in the host's, which must not narrow a match).
func ParseName(ref string) (string, map[string]string, error) {
	comma, colon := strings.IndexRune(ref, ','), strings.IndexRune(ref, ':')
	if comma > -1 && colon > comma {
		return "", nil, errors.New("malformed app string - colon may appear only right after the app name")
	}
	if strings.Count(ref, ":") > 1 {
		return "", nil, errors.New("malformed app string - colon may appear at most once")
	}
	q, err := common.MakeQueryString("name=" + strings.Replace(ref, ":", ",version=", 1))
	if err != nil {
		return "", nil, err
	}
	v, err := url.ParseQuery(q)
	if err != nil {
		return "", nil, err
	}
	var name string
	labels := make(map[string]string, len(v))
	for key, val := range v {
		if len(val) > 1 {
			return "", nil, fmt.Errorf("label %s with multiple values %q", key, val)
		}
		if key == "name" {
			name = val[0]
			continue
		}
		l, err := types.NewACIdentifier(key)
		if err != nil {
			return "", nil, err
		}
		if (key == "os" || key == "arch") && !strings.Contains(ref, key+"=") {
			continue
		}
		labels[l.String()] = val[0]
	}
	n, err := types.NewACIdentifier(name)
	if err != nil {
		return "", nil, err
	}
	return n.String(), labels, nil
}
