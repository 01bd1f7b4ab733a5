package main

import (
	"os/exec"
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
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "-tags", "urfave_cli_no_docs,nscn_nofetch", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch p {
		case "net/http", "crypto/tls", "crypto/x509",
			"github.com/nosecone/nscn/internal/mds",
			"google.golang.org/grpc":
			t.Errorf("nscn links %s", p)
		}
	}
}
