package tree

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/nosecone/nscn/internal/aci"
)

// contentHasher collects the digests of the files extraction writes:
// extraction hashes each file's content from the data it writes, on its
// worker goroutines, so rendering needs no second pass over the file
// contents (hashRootfs takes the digests from here).
//
// Digests are keyed by device and inode. Extraction only writes a file's
// content when it creates the file, and calls add before it closes the
// file, so an inode number cannot be reused by a later file before its
// digest is in; a reused number then overwrites the entry with the new
// file's digest. hashRootfs checks the size too, and reads a file itself
// when it has no digest for it.
type contentHasher struct {
	newHash func() hash.Hash

	mu      sync.Mutex
	digests map[[2]uint64]contentDigest
}

// contentAlgo is the hash of the trees rendered now. BLAKE3 (with a
// 256-bit digest) rather than the SHA-512 of image IDs or the SHA-256 of
// the trees before it: the tree hash only detects a tree that changed
// after rendering, and hashing the contents is the largest part of a
// render's CPU time. On x86-64 with AVX2, BLAKE3 hashes eight chunks of a
// large file at once, about twice SHA-256's speed on the SHA extensions of
// the bench machine, and as fast on small files; elsewhere the module
// falls back to SSE4.1 or portable Go. Trees rendered before keep their
// algorithm: the recorded hash names it, and Verify uses that one.
const contentAlgo = "blake3"

// hashFunc returns the constructor of algo, the part of a tree hash before
// the dash.
func hashFunc(algo string) (func() hash.Hash, error) {
	switch algo {
	case "blake3":
		return func() hash.Hash { return blake3.New() }, nil
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("unknown tree hash algorithm %q", algo)
}

type contentDigest struct {
	size   int64
	digest []byte
}

func newContentHasher(newHash func() hash.Hash) *contentHasher {
	return &contentHasher{newHash: newHash, digests: map[[2]uint64]contentDigest{}}
}

// add records the digest of f. It is aci.ExtractOptions.Content, with
// newHash as aci.ExtractOptions.Hash.
func (h *contentHasher) add(f aci.WrittenFile) {
	id, size, err := fdID(f.Fd)
	if err != nil || f.Digest == nil {
		return // hashRootfs reads the file itself
	}
	h.mu.Lock()
	h.digests[id] = contentDigest{size: size, digest: f.Digest}
	h.mu.Unlock()
}

// done returns the digests. A file that could not be identified has none.
func (h *contentHasher) done() map[[2]uint64]contentDigest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.digests
}
