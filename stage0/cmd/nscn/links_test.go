package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNscnLinksNoHTTP: every pod start pays nscn's start, whose package
// initialisation grows with what it links (Documentation/performance.md).
// nscn as the Makefile builds it (the nscn_nofetch tag) sends no HTTP
// request: the fetch side is nscn-fetch's, the services, the metadata
// service's server among them, nscn-grpc's, and the metadata service's
// client speaks HTTP/1.0 itself (internal/mdsclient).
func TestNscnLinksNoHTTP(t *testing.T) {
	for _, p := range nscnDeps(t) {
		switch p {
		case "net/http", "crypto/tls", "crypto/x509",
			"github.com/nosecone/nscn/internal/mds",
			"google.golang.org/grpc":
			t.Errorf("nscn links %s", p)
		}
	}
}

// TestNscnLinksNoBLAKE3: zeebo/blake3 links klauspost/cpuid, whose
// package initialisation was the largest of nscn's, paid by every pod
// start although a run of rendered trees hashes nothing. nscn hands a
// render that hashes with BLAKE3 and image verify to nscn-fetch
// (store/tree's blake3_lean.go).
func TestNscnLinksNoBLAKE3(t *testing.T) {
	deps := nscnDeps(t)
	if !slices.Contains(deps, "github.com/nosecone/nscn/store/tree") {
		t.Fatal("nscn does not link store/tree: this test checks nothing")
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/zeebo/blake3") || strings.HasPrefix(p, "github.com/klauspost/cpuid") ||
			strings.HasPrefix(p, "lukechampine.com/blake3") {
			t.Errorf("nscn links %s", p)
		}
	}
}

// nscnDeps lists the packages nscn links as the Makefile builds it.
func nscnDeps(t *testing.T) []string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "-tags", "urfave_cli_no_docs,nscn_nofetch", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}
