package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/oci"
	"github.com/nosecone/nscn/stage0/fetch"
	"github.com/nosecone/nscn/stage0/imagehold"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/index"
)

// image is one CRI image: every stored OCI image with the same config.
// Two manifests can name one config (a registry that recompressed the
// layers, the same image pushed by two clients); CRI, like containerd,
// calls them one image.
type image struct {
	id      string   // "sha256:" + the config digest's hex
	keys    []string // the store keys of the images with this config
	tags    []string // repository:tag, sorted
	digests []string // repository@sha256:…, sorted
	size    uint64
	user    string // the app's user, as the config names it
	// newest is the most recently imported of the stored images, whose
	// manifest and annotations the image shows.
	newest *index.Image
}

// idPattern is an image ID as CRI clients write it, with or without the
// algorithm.
var idPattern = regexp.MustCompile(`^(sha256:)?[0-9a-f]{64}$`)

// displayRepo is a repository as containerd and the kubelet write it:
// Docker Hub is docker.io, not go-containerregistry's index.docker.io.
func displayRepo(r name.Repository) string {
	n := r.Name()
	if rest, ok := strings.CutPrefix(n, name.DefaultRegistry+"/"); ok {
		return "docker.io/" + rest
	}
	return n
}

// parseRef parses an image reference a CRI client sends: Docker's form
// without a transport (busybox, registry.k8s.io/pause:3.10,
// repo@sha256:…).
func parseRef(s string) (oci.Reference, error) {
	if s == "" {
		return oci.Reference{}, errdefs.InvalidArgument("empty image reference")
	}
	if strings.Contains(s, "://") || oci.IsReference(s) {
		return oci.Reference{}, errdefs.InvalidArgument("image reference %q: CRI images are registry references without a transport (registry.example.com/app:1.0)", s)
	}
	return oci.ParseReference("docker://" + s)
}

// remoteRef parses the reference of a remote entry the fetcher recorded
// for a registry image: the canonical reference and "#" and the platform.
func remoteRef(url string) (oci.Reference, bool) {
	ref, _, _ := strings.Cut(url, "#")
	if !strings.HasPrefix(ref, "docker://") {
		return oci.Reference{}, false
	}
	r, err := oci.ParseReference(ref)
	return r, err == nil
}

// images reads the store's OCI images as CRI images, sorted by ID.
func (s *Server) images(ctx context.Context) ([]*image, error) {
	ims, err := s.store.Images(ctx)
	if err != nil {
		return nil, err
	}
	remotes, err := s.store.Remotes(ctx)
	if err != nil {
		return nil, err
	}
	byKey := map[string][]*index.Remote{}
	for _, r := range remotes {
		byKey[r.Key] = append(byKey[r.Key], r)
	}
	byID := map[string]*image{}
	var out []*image
	for _, im := range ims {
		if im.OCI == nil || !strings.HasPrefix(im.OCI.Config, "sha256:") {
			// ACIs have no place in CRI's model; `nscn image list` shows them.
			continue
		}
		v := byID[im.OCI.Config]
		if v == nil {
			v = &image{id: im.OCI.Config}
			byID[im.OCI.Config] = v
			out = append(out, v)
		}
		v.keys = append(v.keys, im.Key)
		if v.newest == nil || im.ImportTime.After(v.newest.ImportTime) {
			v.newest = im
		}
		var size uint64
		for _, l := range im.OCI.Layers {
			size += uint64(max(l.Size, 0))
		}
		v.size = max(v.size, size)
		if r, err := oci.ParseReference(im.OCI.Reference); err == nil && r.Transport == oci.Docker && r.Pinned() {
			v.digests = append(v.digests, displayRepo(r.Name.Context())+"@"+r.Digest.String())
		}
		for _, rm := range byKey[im.Key] {
			r, ok := remoteRef(rm.URL)
			if !ok {
				continue
			}
			repo := displayRepo(r.Name.Context())
			if t := r.Tag(); t != "" {
				v.tags = append(v.tags, repo+":"+t)
			}
			// The remote's ETag is the digest the reference resolved
			// to: the index's, for an image picked from one.
			if strings.HasPrefix(rm.ETag, "sha256:") {
				v.digests = append(v.digests, repo+"@"+rm.ETag)
			}
		}
	}
	for _, v := range out {
		slices.Sort(v.tags)
		v.tags = slices.Compact(v.tags)
		slices.Sort(v.digests)
		v.digests = slices.Compact(v.digests)
		if m, err := s.store.Manifest(ctx, v.newest.Key); err == nil && m.App != nil {
			v.user = m.App.User
		}
	}
	slices.SortFunc(out, func(a, b *image) int { return strings.Compare(a.id, b.id) })
	return out, nil
}

// find returns the image ref names (an ID, a tag, a digest reference),
// nil when none does.
func (s *Server) find(ctx context.Context, ref string) (*image, error) {
	all, err := s.images(ctx)
	if err != nil {
		return nil, err
	}
	if idPattern.MatchString(ref) {
		id := ref
		if !strings.HasPrefix(id, "sha256:") {
			id = "sha256:" + id
		}
		for _, v := range all {
			if v.id == id {
				return v, nil
			}
		}
		return nil, nil
	}
	r, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	repo := displayRepo(r.Name.Context())
	want, in := repo+":"+r.Tag(), func(v *image) []string { return v.tags }
	if r.Pinned() {
		want, in = repo+"@"+r.Digest.String(), func(v *image) []string { return v.digests }
	}
	for _, v := range all {
		if slices.Contains(in(v), want) {
			return v, nil
		}
	}
	return nil, nil
}

// criImage is v as CRI shows it.
func (v *image) criImage() *runtimeapi.Image {
	ci := &runtimeapi.Image{
		Id:          v.id,
		RepoTags:    v.tags,
		RepoDigests: v.digests,
		Size:        v.size,
		Spec:        &runtimeapi.ImageSpec{Image: v.id, Annotations: map[string]string{}},
	}
	// A numeric user is a UID, anything else a name that only the
	// image's passwd resolves; kubelet's runAsNonRoot check reads these.
	if uid, err := strconv.ParseInt(v.user, 10, 64); err == nil {
		ci.Uid = &runtimeapi.Int64Value{Value: uid}
	} else {
		ci.Username = v.user
	}
	return ci
}

// ListImages lists the OCI images of the store, or those a filter's
// reference names.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	if f := req.GetFilter().GetImage().GetImage(); f != "" {
		v, err := s.find(ctx, f)
		if err != nil || v == nil {
			return &runtimeapi.ListImagesResponse{}, toStatus(err)
		}
		return &runtimeapi.ListImagesResponse{Images: []*runtimeapi.Image{v.criImage()}}, nil
	}
	all, err := s.images(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.ListImagesResponse{}
	for _, v := range all {
		resp.Images = append(resp.Images, v.criImage())
	}
	return resp, nil
}

// ImageStatus describes one image; an image nothing names is no error,
// just no image, as the CRI asks.
func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	v, err := s.find(ctx, req.GetImage().GetImage())
	if err != nil || v == nil {
		return &runtimeapi.ImageStatusResponse{}, toStatus(err)
	}
	resp := &runtimeapi.ImageStatusResponse{Image: v.criImage()}
	if req.GetVerbose() {
		info, err := json.Marshal(map[string]any{
			"storeKeys": v.keys,
			"source":    v.newest.Source,
			"imported":  v.newest.ImportTime.Format(time.RFC3339Nano),
			"layers":    v.newest.OCI.Layers,
		})
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// PullImage fetches an image from its registry into the store, as `nscn
// fetch docker://…` does with --pull-policy=update (a tag is looked up
// again), under the same trust: a digest, or a tag the operator's
// registries.d trusts. It returns the image's ID.
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	r, err := parseRef(ref)
	if err != nil {
		return nil, toStatus(err)
	}
	f := s.newFetcher()
	f.PullPolicy = fetch.PullUpdate
	if a := req.GetAuth(); a != nil {
		f.OCI.Keychain = multiKeychain(requestKeychain(r.Name.Context().Registry, a), f.OCI.Keychain)
	}
	im, err := f.Fetch(ctx, fetch.Request{Ref: r.String()})
	if err != nil {
		if ctx.Err() != nil {
			// The client's deadline or cancel, reported as such
			// whatever the fetch wrapped it in.
			return nil, toStatus(ctx.Err())
		}
		return nil, toStatus(err)
	}
	if im.OCI == nil {
		return nil, toStatus(fmt.Errorf("image %s is not an OCI image", ref))
	}
	s.log.Info("pulled image", "image", ref, "id", im.OCI.Config, "key", im.Key)
	return &runtimeapi.PullImageResponse{ImageRef: im.OCI.Config}, nil
}

// RemoveImage removes an image with every tag that names it: every stored
// image with its config. An image nothing names is removed already; one a
// pod holds is refused (FailedPrecondition), naming the pods.
func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	v, err := s.find(ctx, req.GetImage().GetImage())
	if err != nil || v == nil {
		return &runtimeapi.RemoveImageResponse{}, toStatus(err)
	}
	refs, unlock, err := imagehold.Lock(ctx, s.store, s.dataDir)
	if err != nil {
		return nil, toStatus(err)
	}
	defer unlock()
	for _, k := range v.keys {
		_, err := s.store.Remove(ctx, k, refs)
		var inUse *store.InUseError
		switch {
		case errors.As(err, &inUse):
			return nil, toStatus(errdefs.FailedPrecondition("image %s is used by pod(s) %s", v.id, strings.Join(inUse.Holders, " ")))
		case errors.Is(err, errdefs.ErrNotFound):
			// Removed meanwhile by another client.
		case err != nil:
			return nil, toStatus(err)
		}
	}
	s.log.Info("removed image", "id", v.id, "tags", v.tags)
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the space and inodes the image store takes
// (cas/: blobs, layers, rendered trees) and the pods take (pods/), by
// walking them: the kubelet's image garbage collection reads it.
func (s *Server) ImageFsInfo(ctx context.Context, _ *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	images, err := usage(ctx, filepath.Join(s.dataDir, "cas"))
	if err != nil {
		return nil, toStatus(err)
	}
	pods, err := usage(ctx, filepath.Join(s.dataDir, "pods"))
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ImageFsInfoResponse{
		ImageFilesystems:     []*runtimeapi.FilesystemUsage{images},
		ContainerFilesystems: []*runtimeapi.FilesystemUsage{pods},
	}, nil
}

// usage walks dir, counting its bytes on disk and inodes once each (hard
// links share the trees' files), without crossing into other file
// systems (a running pod's mounts).
func usage(ctx context.Context, dir string) (*runtimeapi.FilesystemUsage, error) {
	u := &runtimeapi.FilesystemUsage{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: dir},
		UsedBytes:  &runtimeapi.UInt64Value{},
		InodesUsed: &runtimeapi.UInt64Value{},
	}
	var top syscall.Stat_t
	if err := syscall.Lstat(dir, &top); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return u, nil
		}
		return nil, fmt.Errorf("image filesystem %s: %w", dir, err)
	}
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return nil //nolint:nilerr // gone meanwhile: not counted
		}
		if st.Dev != top.Dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		u.InodesUsed.Value++
		u.UsedBytes.Value += uint64(max(st.Blocks, 0)) * 512
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("image filesystem %s: %w", dir, err)
	}
	return u, nil
}

// requestKeychain is the credentials a pull request carries, for the
// registry it pulls from only.
func requestKeychain(registry name.Registry, a *runtimeapi.AuthConfig) authn.Keychain {
	cfg := authn.AuthConfig{
		Username:      a.GetUsername(),
		Password:      a.GetPassword(),
		Auth:          a.GetAuth(),
		IdentityToken: a.GetIdentityToken(),
		RegistryToken: a.GetRegistryToken(),
	}
	if cfg == (authn.AuthConfig{}) {
		return nil
	}
	return registryKeychain{registry: registry.RegistryStr(), auth: authn.FromConfig(cfg)}
}

type registryKeychain struct {
	registry string
	auth     authn.Authenticator
}

func (k registryKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.registry {
		return k.auth, nil
	}
	return authn.Anonymous, nil
}

// multiKeychain asks first, then the configured keychain, skipping nils.
func multiKeychain(first, then authn.Keychain) authn.Keychain {
	switch {
	case first == nil:
		return then
	case then == nil:
		return first
	}
	return authn.NewMultiKeychain(first, then)
}
