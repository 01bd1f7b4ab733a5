package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/nosecone/nscn/stage1/entrypoint"
)

func TestFlavorIsTheEntrypoints(t *testing.T) {
	if flavor != entrypoint.Flavor {
		t.Fatalf("the helper's flavor %q is not the entrypoints' %q", flavor, entrypoint.Flavor)
	}
}

// TestHelperLinksNoNetworking: every app start waits for this binary's
// start, whose package initialisation grows with what it links. It needs
// none of the run entrypoint's networking.
func TestHelperLinksNoNetworking(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "github.com/nosecone/nscn/stage1/entrypoint",
			p == "github.com/nosecone/nscn/networking",
			strings.HasPrefix(p, "github.com/nosecone/nscn/networking/cni"),
			strings.HasPrefix(p, "github.com/containernetworking/cni/libcni"),
			strings.HasPrefix(p, "github.com/containernetworking/plugins/"),
			strings.HasPrefix(p, "github.com/vishvananda/"),
			strings.HasPrefix(p, "sigs.k8s.io/knftables"),
			strings.HasPrefix(p, "go.opentelemetry.io/"):
			t.Errorf("the app helper links %s", p)
		}
	}
}
