//go:build !nscn_nofetch

package tree

import (
	"hash"

	"github.com/zeebo/blake3"
)

// newBLAKE3 is BLAKE3's constructor. Only nscn is built without it
// (blake3_lean.go).
var newBLAKE3 = func() hash.Hash { return blake3.New() }
