package tree

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/timeline"
)

// Names inside a tree directory, and of the scratch directories beside
// them.
const (
	rootfsDir    = "rootfs"
	manifestFile = "manifest"
	metaFile     = "tree.json"
	lastUsedFile = "lastused"
	completeFile = "complete"

	tmpPrefix   = ".tmp-"
	trashPrefix = ".trash-"
	lockSuffix  = ".lock"

	metaVersion = 1
)

// Tree is a rendered tree.
type Tree struct {
	Key      string    // "deps-sha512-" + 64 hex digits
	Path     string    // the tree directory
	Rootfs   string    // Path/rootfs, the root filesystem
	ImageIDs []string  // the images extracted, in render order; the top image last
	Hash     string    // content hash of Rootfs at render time
	Rendered time.Time // when the render completed
	LastUsed time.Time // the last Render or Touch
}

// metadata is tree.json.
type metadata struct {
	Version  int       `json:"version"`
	Key      string    `json:"key"`
	ImageIDs []string  `json:"imageIDs"`
	Hash     string    `json:"hash"`
	Rendered time.Time `json:"rendered"`
}

// Store is a directory of rendered trees. The zero value is not usable;
// call New. A Store holds no open files, and any number of Stores, in any
// number of processes, may share a directory.
type Store struct {
	dir      string
	src      Source
	preserve bool
	// maxOCISize bounds the uncompressed size of an OCI image's layers
	// (0: no bound), so a decompression bomb stops while it renders.
	maxOCISize int64
	// decoders decode the zstd layers of OCI images (gzip needs none).
	decoders aci.Decoders
	log      *slog.Logger
	now      func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithPreserveOwnership sets whether trees get the owners recorded in the
// images (and their privileged xattrs). It needs root, and defaults to
// whether the process runs as root.
func WithPreserveOwnership(b bool) Option { return func(s *Store) { s.preserve = b } }

// WithMaxOCISize bounds the uncompressed size of the layers of an OCI
// image rendered (0: no bound): an ACI is bounded when it is imported, an
// OCI image's layers are only decompressed here.
func WithMaxOCISize(n int64) Option { return func(s *Store) { s.maxOCISize = n } }

// WithDecoders gives the decoders of zstd OCI layers: without them, such a
// layer is an aci.ErrNoDecoder error (nscn, which links none, hands that
// command to nscn-fetch).
func WithDecoders(d aci.Decoders) Option { return func(s *Store) { s.decoders = d } }

// WithLogger sets where renders and removals are logged, at debug level.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// New returns the store of trees under dir (e.g. <datadir>/cas/tree),
// reading images through src. dir is created on first render.
func New(dir string, src Source, opts ...Option) *Store {
	s := &Store{
		dir:      dir,
		src:      src,
		preserve: os.Geteuid() == 0,
		log:      slog.New(slog.DiscardHandler),
		now:      time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Store) treePath(key string) string { return filepath.Join(s.dir, key) }

// Render returns the tree of imageID with its dependencies, rendering it
// unless a complete one exists, and marks it used. Concurrent renders of
// the same tree, in this process or others, render it once: the others
// wait and return the result.
func (s *Store) Render(ctx context.Context, imageID string) (*Tree, error) {
	return s.renderImage(ctx, imageID, false)
}

// RenderAnyHash is Render in a program built without the hash new trees
// are rendered with (nscn, without BLAKE3): where Render fails with
// ErrNoHasher, it hashes the new tree with SHA-256, which every build
// verifies. Render and a hand-over to nscn-fetch keep renders at BLAKE3's
// speed; this is for the commands that cannot hand over, whose pods'
// trees are rendered again only when deleted by hand (store.RestoreTree).
func (s *Store) RenderAnyHash(ctx context.Context, imageID string) (*Tree, error) {
	return s.renderImage(ctx, imageID, true)
}

func (s *Store) renderImage(ctx context.Context, imageID string, anyHash bool) (*Tree, error) {
	layers, err := s.Plan(ctx, imageID)
	if err != nil {
		return nil, err
	}
	key := Key(layers)
	// Fast path without the lock: complete trees never change.
	if t, err := s.load(key); err == nil {
		s.markUsed(ctx, t)
		return t, nil
	}
	// A hash this program lacks (ErrNoHasher) fails before anything is
	// written or locked, so that the command can be handed over.
	algo := contentAlgo
	newHash, err := hashFunc(algo)
	if errors.Is(err, ErrNoHasher) && anyHash {
		algo = "sha256"
		newHash, err = hashFunc(algo)
	}
	if err != nil {
		return nil, fmt.Errorf("render tree %s: %w", key, err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil { //nolint:gosec // G703: a path in the store's own directory
		return nil, fmt.Errorf("create tree store directory: %w", err)
	}
	l, err := s.lock(ctx, key, true)
	if err != nil {
		return nil, err
	}
	defer l.release(false)
	// Someone may have rendered it while we waited.
	if t, err := s.load(key); err == nil {
		s.markUsed(ctx, t)
		return t, nil
	}
	// Whatever is at the key now is unusable (no completion marker, or
	// unreadable metadata): a crash or tampering. Start over.
	if _, err := os.Lstat(s.treePath(key)); err == nil { //nolint:gosec // G703: a path in the store's own directory
		s.log.DebugContext(ctx, "discarding incomplete tree", "tree", key)
		if err := s.discard(key); err != nil {
			return nil, err
		}
	}
	return s.render(ctx, key, imageID, layers, algo, newHash)
}

// render builds the tree in a scratch directory and renames it into place.
// The caller holds the key's lock.
func (s *Store) render(ctx context.Context, key, imageID string, layers []Layer, algo string, newHash func() hash.Hash) (_ *Tree, err error) {
	s.log.DebugContext(ctx, "rendering tree", "tree", key, "image", imageID, "layers", len(layers))
	tmp, err := os.MkdirTemp(s.dir, tmpPrefix+key+"-")
	if err != nil {
		return nil, fmt.Errorf("render tree %s: create scratch directory: %w", key, err)
	}
	defer func() {
		if err != nil {
			_ = removeTree(tmp)
		}
	}()
	rootfs := filepath.Join(tmp, rootfsDir)
	if err := os.Mkdir(rootfs, 0o755); err != nil { //nolint:gosec // G703: a path in the store's own directory
		return nil, fmt.Errorf("render tree %s: %w", key, err)
	}
	ids := make([]string, len(layers))
	for i, l := range layers {
		ids[i] = l.ImageID
	}
	tl := timeline.FromContext(ctx)
	hasher := newContentHasher(newHash)
	// The walk of the tree's hash starts once the last layer's names are
	// final, while extraction's workers write the last files (their
	// records tell the walk what it would read from them), or else after
	// extraction.
	walkCtx, stopWalk := context.WithCancel(ctx)
	defer stopWalk()
	type walkResult struct {
		hash string
		err  error
	}
	walked := make(chan walkResult, 1)
	walking := false
	startWalk := func() {
		if walking {
			return
		}
		walking = true
		go func() {
			h, err := hashRootfs(walkCtx, rootfs, algo, hasher)
			walked <- walkResult{h, err}
		}()
	}
	err = s.extractLayers(ctx, layers, rootfs, hasher, startWalk)
	hasher.end()
	if err != nil {
		if walking {
			stopWalk()
			<-walked // before the scratch directory goes
		}
		return nil, fmt.Errorf("render tree %s: %w", key, err)
	}
	tl.Mark("rootfs-extracted")

	m, err := s.src.Manifest(ctx, imageID)
	if err != nil {
		return nil, fmt.Errorf("render tree %s: read manifest of image %s: %w", key, imageID, err)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("render tree %s: encode manifest: %w", key, err)
	}
	if err := writeFileSync(filepath.Join(tmp, manifestFile), mb, 0o644); err != nil {
		stopWalk()
		if walking {
			<-walked
		}
		return nil, fmt.Errorf("render tree %s: %w", key, err)
	}
	startWalk()
	res := <-walked
	if res.err != nil {
		return nil, fmt.Errorf("render tree %s: %w", key, res.err)
	}
	hash := res.hash
	tl.Mark("tree-hashed")
	// One syncfs instead of an fsync per extracted file: the tree must be
	// durable before the marker says it is complete.
	if err := syncFS(tmp); err != nil {
		return nil, fmt.Errorf("render tree %s: %w", key, err)
	}
	tl.Mark("tree-synced")

	rendered := s.now()
	meta := metadata{Version: metaVersion, Key: key, ImageIDs: ids, Hash: hash, Rendered: rendered.UTC()}
	mj, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render tree %s: encode metadata: %w", key, err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{metaFile, append(mj, '\n')}, {lastUsedFile, nil}, {completeFile, nil}} {
		if err := writeFileSync(filepath.Join(tmp, f.name), f.data, 0o644); err != nil {
			return nil, fmt.Errorf("render tree %s: %w", key, err)
		}
		if f.name == lastUsedFile {
			// Rendering is a use.
			if err := os.Chtimes(filepath.Join(tmp, f.name), rendered, rendered); err != nil {
				return nil, fmt.Errorf("render tree %s: %w", key, err)
			}
		}
	}
	if err := syncDir(tmp); err != nil {
		return nil, fmt.Errorf("render tree %s: %w", key, err)
	}
	final := s.treePath(key)
	if err := os.Rename(tmp, final); err != nil { //nolint:gosec // G703: a path in the store's own directory
		return nil, fmt.Errorf("render tree %s: move into place: %w", key, err)
	}
	if err := syncDir(s.dir); err != nil {
		// The tree is in place; only its durability across a crash is in
		// doubt, and a torn rename leaves debris Clean handles.
		s.log.WarnContext(ctx, "sync tree store directory", "tree", key, "error", err)
	}
	return s.load(key)
}

// extractLayers extracts the layers of a plan, in order, into rootfs,
// recording the digest of each regular file written in content unless it
// is nil.
func (s *Store) extractLayers(ctx context.Context, layers []Layer, rootfs string, content *contentHasher, namesDone func()) error {
	for i, l := range layers {
		var done func()
		if i == len(layers)-1 {
			done = namesDone
		}
		if err := s.extractLayer(ctx, l, rootfs, content, done); err != nil {
			return fmt.Errorf("layer %d of %d, image %s (%s): %w", i+1, len(layers), l.Name, l.ImageID, err)
		}
	}
	return nil
}

// namesDone, if not nil, is called once the layer's names are final
// (aci.ExtractOptions.NamesDone; not for an OCI image, whose layers are
// extracted in turn).
func (s *Store) extractLayer(ctx context.Context, l Layer, rootfs string, content *contentHasher, namesDone func()) error {
	oci, err := s.src.OCILayers(ctx, l.ImageID)
	if err != nil {
		return fmt.Errorf("read image: %w", err)
	}
	if oci != nil {
		opts := aci.ExtractOptions{PreserveOwnership: s.preserve}
		if content != nil {
			opts.Hash, opts.Content = content.newHash, content.add
		}
		return ExtractOCILayers(ctx, oci, rootfs, opts, s.decoders, s.maxOCISize)
	}
	rc, err := s.src.OpenImage(ctx, l.ImageID)
	if err != nil {
		return fmt.Errorf("open image: %w", err)
	}
	defer func() { _ = rc.Close() }()
	opts := aci.ExtractOptions{PreserveOwnership: s.preserve, NamesDone: namesDone}
	if content != nil {
		opts.Hash, opts.Content = content.newHash, content.add
	}
	if len(l.Whitelists) > 0 {
		opts.Filter = l.Admits
	}
	return aci.ExtractRootfs(ctx, rc, rootfs, opts)
}

// ExtractOCILayers applies the layers of an OCI image in order into
// rootfs, with their whiteouts (opts.Layer is set for them), and checks
// that each layer's uncompressed content is the one the image config names
// (its diff ID): the blob's own digest was checked when it was stored, this
// ties the layer to the config. maxSize bounds the layers' uncompressed
// size together (0: no bound); passing it is an InvalidArgument error
// wrapping an *aci.LimitError. decoders decode zstd layers.
func ExtractOCILayers(ctx context.Context, layers []OCILayer, rootfs string, opts aci.ExtractOptions, decoders aci.Decoders, maxSize int64) error {
	opts.Layer = true
	var used int64
	for i, l := range layers {
		n, err := extractOCILayer(ctx, l, rootfs, opts, decoders, maxSize, used)
		if err != nil {
			return fmt.Errorf("OCI layer %d of %d (%s): %w", i+1, len(layers), l.Digest, err)
		}
		used += n
	}
	return nil
}

// countWriter counts what goes through it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func extractOCILayer(ctx context.Context, l OCILayer, rootfs string, opts aci.ExtractOptions, decoders aci.Decoders, maxSize, used int64) (int64, error) {
	rc, err := l.OpenBlob(ctx)
	if err != nil {
		return 0, fmt.Errorf("open layer: %w", err)
	}
	defer func() { _ = rc.Close() }()
	dec, _, err := aci.Decompress(rc, decoders)
	if err != nil {
		return 0, fmt.Errorf("read layer: %w", err)
	}
	defer func() { _ = dec.Close() }()
	var tr io.Reader = dec
	if maxSize > 0 {
		if used >= maxSize {
			return 0, errdefs.With(errdefs.ErrInvalidArgument, &aci.LimitError{Limit: maxSize})
		}
		tr = aci.NewLimitedReader(dec, maxSize-used)
	}
	h := sha256.New()
	var n countWriter
	sink := io.MultiWriter(h, &n)
	if err := aci.ExtractRootfs(ctx, io.TeeReader(tr, sink), rootfs, opts); err != nil {
		return n.n, err
	}
	// The tar reader stops at the end-of-archive marker; the diff ID
	// covers the padding after it too.
	if _, err := io.Copy(sink, tr); err != nil {
		return n.n, fmt.Errorf("read layer: %w", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.DiffID {
		return n.n, errdefs.InvalidArgument("layer content hashes to %s, the image config says %s", got, l.DiffID)
	}
	return n.n, nil
}

// load reads a complete tree. A missing or incomplete tree is NotFound;
// unreadable metadata is FailedPrecondition.
func (s *Store) load(key string) (*Tree, error) {
	p := s.treePath(key)
	st, err := os.Lstat(filepath.Join(p, completeFile)) //nolint:gosec // G703: a path in the store's own directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("tree %s not found", key)
	}
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", key, err)
	}
	if !st.Mode().IsRegular() {
		return nil, errdefs.FailedPrecondition("tree %s: completion marker is not a file", key)
	}
	b, err := readSmall(filepath.Join(p, metaFile))
	if err != nil {
		return nil, errdefs.With(errdefs.ErrFailedPrecondition, fmt.Errorf("read tree %s metadata: %w", key, err))
	}
	var meta metadata
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, errdefs.With(errdefs.ErrFailedPrecondition, fmt.Errorf("read tree %s metadata: %w", key, err))
	}
	if meta.Key != key || meta.Version != metaVersion {
		return nil, errdefs.FailedPrecondition("tree %s: metadata is for tree %q, version %d", key, meta.Key, meta.Version)
	}
	t := &Tree{
		Key:      key,
		Path:     p,
		Rootfs:   filepath.Join(p, rootfsDir),
		ImageIDs: meta.ImageIDs,
		Hash:     meta.Hash,
		Rendered: meta.Rendered,
		LastUsed: meta.Rendered,
	}
	if st, err := os.Stat(filepath.Join(p, lastUsedFile)); err == nil { //nolint:gosec // G703: a path in the store's own directory
		t.LastUsed = st.ModTime()
	}
	return t, nil
}

// readSmall reads a small file of the store, as os.ReadFile does but
// without os.Open's attempt to register a regular file with the runtime's
// poller (five system calls that achieve nothing): every pod start reads
// the metadata of its trees.
func readSmall(path string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for errors.Is(err, syscall.EINTR) {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer func() { _ = f.Close() }()
	return io.ReadAll(f)
}

// Get returns the complete tree with the given key. An ill-formed key is
// InvalidArgument; a missing or incomplete tree is NotFound.
func (s *Store) Get(_ context.Context, key string) (*Tree, error) {
	if !ValidKey(key) {
		return nil, errdefs.InvalidArgument("tree key %q is malformed", key)
	}
	return s.load(key)
}

// List returns the complete trees, sorted by key. Incomplete trees and
// trees with unreadable metadata are left out (Clean removes them).
func (s *Store) List(ctx context.Context) ([]Tree, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list trees: %w", err)
	}
	var out []Tree
	for _, e := range ents {
		if !e.IsDir() || !ValidKey(e.Name()) {
			continue
		}
		t, err := s.load(e.Name())
		if err != nil {
			s.log.DebugContext(ctx, "skipping unusable tree", "tree", e.Name(), "error", err)
			continue
		}
		out = append(out, *t)
	}
	return out, nil
}

// Touch records that a pod uses the tree now.
func (s *Store) Touch(ctx context.Context, key string) error {
	t, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	return s.touch(t)
}

// useResolution is how precisely Render records a tree's last use: a
// render within this long of the recorded use (a cache hit of a pod start,
// typically) leaves lastused alone, which spares every pod start a
// utimensat per tree. Tree gc's grace periods are minutes and more, and gc
// never removes a tree a pod holds. Touch always records.
const useResolution = time.Minute

// markUsed is touch for Render, where failing to record the use (a
// read-only store, say) must not fail the pod: the tree is there.
func (s *Store) markUsed(ctx context.Context, t *Tree) {
	if age := s.now().Sub(t.LastUsed); age >= 0 && age < useResolution {
		return
	}
	if err := s.touch(t); err != nil {
		s.log.WarnContext(ctx, "record tree use", "tree", t.Key, "error", err)
	}
}

func (s *Store) touch(t *Tree) error {
	now := s.now()
	p := filepath.Join(t.Path, lastUsedFile)
	err := os.Chtimes(p, now, now)
	if errors.Is(err, fs.ErrNotExist) {
		// Written by every render; recreate it if someone removed it.
		err = writeFileSync(p, nil, 0o644)
	}
	if err != nil {
		return fmt.Errorf("mark tree %s used: %w", t.Key, err)
	}
	t.LastUsed = now
	return nil
}

// Verify recomputes the content hash of a tree and compares it with the
// one recorded at render time. A difference is a FailedPrecondition error.
func (s *Store) Verify(ctx context.Context, key string) error {
	t, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	algo, _, _ := strings.Cut(t.Hash, "-")
	got, err := hashRootfs(ctx, t.Rootfs, algo, nil)
	if err != nil {
		return fmt.Errorf("verify tree %s: %w", key, err)
	}
	if got != t.Hash {
		return errdefs.FailedPrecondition("verify tree %s: content hash is %s, %s at render time", key, got, t.Hash)
	}
	return nil
}

// Remove deletes a tree. It waits for a render of the same key to finish,
// and moves the tree out of its name before deleting it, so that no one
// sees a half-removed tree. A missing tree is NotFound.
func (s *Store) Remove(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return errdefs.InvalidArgument("tree key %q is malformed", key)
	}
	if _, err := os.Stat(s.dir); errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("tree %s not found", key)
	}
	l, err := s.lock(ctx, key, true)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(s.treePath(key)); errors.Is(err, fs.ErrNotExist) {
		l.release(true)
		return errdefs.NotFound("tree %s not found", key)
	}
	err = s.discard(key)
	// The lock file goes with the tree; anyone waiting on it notices and
	// opens a fresh one.
	l.release(err == nil)
	if err != nil {
		return err
	}
	s.log.DebugContext(ctx, "removed tree", "tree", key)
	return nil
}

// discard renames the tree directory of key to a trash name, then deletes
// it. The caller holds the key's lock.
func (s *Store) discard(key string) error {
	trash, err := os.MkdirTemp(s.dir, trashPrefix+key+"-")
	if err != nil {
		return fmt.Errorf("remove tree %s: %w", key, err)
	}
	if err := os.Rename(s.treePath(key), filepath.Join(trash, "tree")); err != nil { //nolint:gosec // G703: a path in the store's own directory
		_ = os.Remove(trash) //nolint:gosec // G703: a path in the store's own directory
		return fmt.Errorf("remove tree %s: %w", key, err)
	}
	if err := removeTree(trash); err != nil {
		return fmt.Errorf("remove tree %s: %w", key, err)
	}
	return nil
}

// Clean removes what crashed renders and removals left behind: scratch
// and trash directories, tree directories without a completion marker or
// with unreadable metadata, and lock files of trees that do not exist.
// What a live render in any process is using is left alone.
func (s *Store) Clean(ctx context.Context) error {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean trees: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		var err error
		switch {
		case strings.HasPrefix(name, tmpPrefix) || strings.HasPrefix(name, trashPrefix):
			err = s.cleanScratch(ctx, name)
		case ValidKey(name) && e.IsDir():
			err = s.cleanIncomplete(ctx, name)
		case strings.HasSuffix(name, lockSuffix) && ValidKey(strings.TrimSuffix(name, lockSuffix)):
			err = s.cleanLock(ctx, strings.TrimSuffix(name, lockSuffix))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean trees: %w", err)
	}
	return nil
}

// cleanScratch removes a .tmp-<key>-* or .trash-<key>-* directory unless
// the key's lock is held: a held lock means the render or removal that
// owns it is still running.
func (s *Store) cleanScratch(ctx context.Context, name string) error {
	// The name is <prefix><key>-<random>; a name without a key (made by
	// hand, or by an older layout) has no owner to ask and just goes.
	rest := strings.TrimPrefix(strings.TrimPrefix(name, tmpPrefix), trashPrefix)
	if n := len(KeyPrefix) + keyHexLen; len(rest) > n && rest[n] == '-' && ValidKey(rest[:n]) {
		l, err := s.lock(ctx, rest[:n], false)
		if errors.Is(err, errLocked) {
			return nil
		}
		if err != nil {
			return err
		}
		defer l.release(false)
	}
	s.log.DebugContext(ctx, "removing leftover directory", "dir", name)
	return removeTree(filepath.Join(s.dir, name))
}

func (s *Store) cleanIncomplete(ctx context.Context, key string) error {
	if _, err := s.load(key); err == nil {
		return nil
	}
	l, err := s.lock(ctx, key, false)
	if errors.Is(err, errLocked) {
		return nil
	}
	if err != nil {
		return err
	}
	defer l.release(false)
	if _, err := s.load(key); err == nil {
		return nil
	}
	s.log.DebugContext(ctx, "removing incomplete tree", "tree", key)
	return s.discard(key)
}

func (s *Store) cleanLock(ctx context.Context, key string) error {
	if _, err := os.Lstat(s.treePath(key)); err == nil {
		return nil
	}
	l, err := s.lock(ctx, key, false)
	if errors.Is(err, errLocked) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = os.Lstat(s.treePath(key))
	l.release(errors.Is(err, fs.ErrNotExist))
	return nil
}

// writeFileSync creates name (which must not exist) with data and fsyncs
// it.
func writeFileSync(name string, data []byte, perm os.FileMode) (err error) { //nolint:unparam // os.WriteFile's shape: the mode stays visible at each call
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, perm) //nolint:gosec // G304: a path in the store's own directory
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(name), err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", filepath.Base(name), cerr)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(name), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Base(name), err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir) //nolint:gosec // G304: a path in the store's own directory
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// removeTree is os.RemoveAll that also gets through directories without
// write permission, which rendered trees hold (a non-root caller cannot
// unlink their entries without first making them writable).
func removeTree(p string) error {
	err := os.RemoveAll(p) //nolint:gosec // G703: a path in the store's own directory
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error { //nolint:gosec // G703: a path in the store's own directory
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o700) //nolint:gosec // G302: a directory, which needs x to be searched
		}
		return nil
	})
	return os.RemoveAll(p) //nolint:gosec // G703: a path in the store's own directory
}
