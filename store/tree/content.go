package tree

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"sync"

	"golang.org/x/sys/cpu"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
)

// contentHasher collects what the tree hash records of the regular files
// extraction writes: extraction hashes each file's content from the data
// it writes, on its worker goroutines, and add takes the rest of the record
// (mode, owner, size) from the file's descriptor once extraction has set
// them, so rendering needs no second pass over the files: hashRootfs finds
// the record of a regular file by the inode number its directory listing
// gives, and neither reads nor stats the file again.
//
// Records are keyed by device and inode. Extraction only writes a file's
// content when it creates the file, sets its metadata before it calls add
// and never changes the file after that (a later entry at its path
// replaces it with a new inode; a hard link to it changes neither its
// mode nor its owner), and calls add before it closes the file, so an
// inode number cannot be reused by a later file before its record is in;
// a reused number then overwrites the entry with the new file's record.
//
// The walk may start before extraction ends: once the last layer's names
// and directories are final (aci.ExtractOptions.NamesDone), only the
// contents and metadata of the files still queued for extraction's
// workers change. The walk lists the directories and encodes every other
// entry meanwhile, and a regular file once extraction has ended (end):
// until then a record found under a file's inode number may be that of
// an earlier file, since removed, whose number the file took.
type contentHasher struct {
	newHash func() hash.Hash

	mu      sync.Mutex
	changed sync.Cond // broadcast by end, under mu
	records map[[2]uint64]fileRecord
	ended   bool
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

// ErrNoHasher is the error of a render or a verification that needs a
// tree hash this program was built without: BLAKE3 in nscn, which is
// built with the nscn_nofetch tag (blake3_lean.go) and hands such a
// command to nscn-fetch. It is checked before anything is written.
var ErrNoHasher = errors.New("tree hash not linked into this program")

// hashFunc returns the constructor of algo, the part of a tree hash before
// the dash.
func hashFunc(algo string) (func() hash.Hash, error) {
	switch algo {
	case "blake3":
		if newBLAKE3 == nil {
			return nil, errdefs.With(errdefs.ErrNotImplemented, fmt.Errorf("tree hash %s: %w", algo, ErrNoHasher))
		}
		return newBLAKE3, nil
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("unknown tree hash algorithm %q", algo)
}

// fileRecord is what the tree hash records of a regular file but its
// path and xattrs, as fstat reports it on its descriptor. (Its xattrs are
// read from the tree: the kernel may add one when the file is closed, as
// IMA does with security.ima.)
type fileRecord struct {
	size     int64
	perm     uint32 // the permission bits, setuid, setgid and sticky included
	uid, gid uint32
	digest   []byte
	// noXattrs: the file had no xattrs (but security.selinux) when
	// extraction was done with it, and closing it adds none (see
	// closeAddsNoXattrs), so the walk need not ask the tree.
	noXattrs bool
}

func newContentHasher(newHash func() hash.Hash) *contentHasher {
	h := &contentHasher{newHash: newHash, records: map[[2]uint64]fileRecord{}}
	h.changed.L = &h.mu
	return h
}

// add records f. It is aci.ExtractOptions.Content, with newHash as
// aci.ExtractOptions.Hash. A file it cannot read the metadata of gets no
// record: hashRootfs then reads the file itself.
func (h *contentHasher) add(f aci.WrittenFile) {
	if f.Digest == nil {
		return
	}
	id, rec, err := fdRecord(f.Fd)
	if err != nil {
		return
	}
	rec.digest = f.Digest
	rec.noXattrs = closeAddsNoXattrs() && fdHasNoXattrs(f.Fd)
	h.mu.Lock()
	h.records[id] = rec
	h.mu.Unlock()
}

// end records that extraction is over, successful or not: every file it
// wrote has its record, if it gets one, and is closed. It may be called
// more than once.
func (h *contentHasher) end() {
	h.mu.Lock()
	h.ended = true
	h.mu.Unlock()
	h.changed.Broadcast()
}

// get returns the record of the file id, if it has one yet. h may be nil
// (no records).
func (h *contentHasher) get(id [2]uint64) (fileRecord, bool) {
	if h == nil {
		return fileRecord{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.records[id]
	return r, ok
}

// isEnded reports whether extraction is over (true for nil: no records).
func (h *contentHasher) isEnded() bool {
	if h == nil {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ended
}

// waitEnded waits until extraction is over.
func (h *contentHasher) waitEnded() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for !h.ended {
		h.changed.Wait()
	}
}
