package main

import (
	"testing"

	"github.com/nosecone/nscn/stage1-kvm/entrypoint"
)

// The helper names the flavor in its log lines and error line as the
// entrypoints do.
func TestFlavorIsTheEntrypoints(t *testing.T) {
	if flavor != entrypoint.Flavor {
		t.Errorf("flavor = %q, entrypoint.Flavor = %q", flavor, entrypoint.Flavor)
	}
}
