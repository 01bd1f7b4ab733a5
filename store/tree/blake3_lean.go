//go:build nscn_nofetch

package tree

import "hash"

// newBLAKE3 is nil in nscn's build (the nscn_nofetch tag): zeebo/blake3
// links klauspost/cpuid, whose package initialisation (dozens of CPUID
// instructions, each an exit to the hypervisor on a VM) was the largest of
// every nscn process, pod starts included, while a run of a rendered tree
// hashes nothing. A render or verification that needs BLAKE3 is an
// ErrNoHasher error, and nscn hands the command to nscn-fetch
// (Documentation/performance.md, the flyrender pass).
var newBLAKE3 func() hash.Hash
