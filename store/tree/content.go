package tree

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"sync"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/cpu"

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

// contentAlgo is the hash of the trees rendered now: BLAKE3 (with a
// 256-bit digest) on x86-64 with AVX2, SHA-256 elsewhere. The tree hash
// only detects a tree that changed after rendering, and hashing the
// contents is the largest part of a render's CPU time. With AVX2, BLAKE3
// hashes eight chunks of a large file at once, about twice SHA-256's speed
// on the SHA extensions of the bench machine, and as fast on small files;
// without it the module has only SSE4.1 or portable Go, not measured
// against SHA-256 on the SHA instructions of current arm64 and x86 CPUs,
// so SHA-256 stays. The choice is
// per host and safe: the recorded hash names its algorithm, and Verify
// uses that one, so trees rendered before (sha256 or sha512) or on
// another CPU keep verifying.
var contentAlgo = pickContentAlgo(cpu.X86.HasAVX2)

func pickContentAlgo(avx2 bool) string {
	if avx2 {
		return "blake3"
	}
	return "sha256"
}

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
