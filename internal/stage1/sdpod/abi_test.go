package sdpod

import (
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// The app output FIFOs are where the ABI says they are, for `nscn cri`'s
// log writer, which reads them from the host.
func TestAppOutputFIFOsMatchABI(t *testing.T) {
	for _, tc := range []struct {
		name, stream, sdpod string
	}{
		{"stdout", stage1abi.LogStreamStdout, AppStdoutFIFO("app1")},
		{"stderr", stage1abi.LogStreamStderr, AppStderrFIFO("app1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := filepath.Join(stage1abi.Stage1RootfsRel, tc.sdpod)
			if got := stage1abi.AppOutputFIFO("app1", tc.stream); got != want {
				t.Fatalf("stage1abi.AppOutputFIFO = %s, sdpod has %s", got, want)
			}
		})
	}
	if got, want := stage1abi.AppInputFIFO("app1"), filepath.Join(stage1abi.Stage1RootfsRel, AppStdinFIFO("app1")); got != want {
		t.Fatalf("stage1abi.AppInputFIFO = %s, sdpod has %s", got, want)
	}
}
