package tree

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sync"
)

// contentHasher hashes the content of the files extraction writes, on
// worker goroutines, while extraction goes on: rendering then needs no
// second pass over the file contents (hashRootfs takes the digests from
// here), and on a machine with several cores the hashing overlaps the
// extraction instead of following it.
//
// Digests are keyed by device and inode. Extraction only writes a file's
// content when it creates the file, and a worker holds the file open until
// it has recorded its digest, so an inode number cannot be reused by a
// later file before its digest is in; a reused number then overwrites the
// entry with the new file's digest. hashRootfs checks the size too, and
// reads a file itself when it has no digest for it.
type contentHasher struct {
	newHash func() hash.Hash
	files   chan *os.File
	wg      sync.WaitGroup

	mu      sync.Mutex
	digests map[[2]uint64]contentDigest
}

// contentAlgo is the hash of the trees rendered now. SHA-256 rather than
// the SHA-512 of image IDs: the tree hash only detects a tree that changed
// after rendering, and SHA-256 has hardware support (SHA-NI) on current
// x86 and arm64 CPUs, about 2.5 times the speed of SHA-512 on the bench
// machine. Trees rendered with sha512 keep it: the recorded hash names its
// algorithm, and Verify uses that one.
const contentAlgo = "sha256"

// hashFunc returns the constructor of algo, the part of a tree hash before
// the dash.
func hashFunc(algo string) (func() hash.Hash, error) {
	switch algo {
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

// newContentHasher starts one worker per processor Go may use, hashing
// with newHash.
func newContentHasher(newHash func() hash.Hash) *contentHasher {
	h := &contentHasher{
		newHash: newHash,
		files:   make(chan *os.File, 64),
		digests: map[[2]uint64]contentDigest{},
	}
	for range runtime.GOMAXPROCS(0) {
		h.wg.Go(h.work)
	}
	return h
}

// add queues f, which add's caller gives up, for hashing. It is
// aci.ExtractOptions.Content.
func (h *contentHasher) add(f *os.File) { h.files <- f }

// done waits for the queued files and returns the digests. A file that
// could not be read has none.
func (h *contentHasher) done() map[[2]uint64]contentDigest {
	close(h.files)
	h.wg.Wait()
	return h.digests
}

func (h *contentHasher) work() {
	buf := make([]byte, 256<<10)
	for f := range h.files {
		if id, d, ok := digestFile(f, h.newHash(), buf); ok {
			h.mu.Lock()
			h.digests[id] = d
			h.mu.Unlock()
		}
		// Only now may the inode be freed and its number reused.
		_ = f.Close()
	}
}

// digestFile hashes f from its start, whatever its offset.
func digestFile(f *os.File, s hash.Hash, buf []byte) (id [2]uint64, d contentDigest, ok bool) {
	id, size, err := fileID(f)
	if err != nil {
		return id, d, false
	}
	n, err := io.CopyBuffer(s, io.NewSectionReader(f, 0, size), buf)
	if err != nil || n != size {
		return id, d, false
	}
	return id, contentDigest{size: size, digest: s.Sum(nil)}, true
}
