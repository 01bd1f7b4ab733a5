package cli

import (
	"io"
	"strings"
	"testing"
)

// BenchmarkNewApp is the cost of building the command tree, which every
// nscn command pays in main before it parses its flags
// (Documentation/performance.md, the runlean pass).
func BenchmarkNewApp(b *testing.B) {
	for b.Loop() {
		_ = NewApp(strings.NewReader(""), io.Discard, io.Discard)
	}
}
