//go:build functional

package security

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestCRILogWriterRefusesPlantedFIFOs: what a pod's stage1 can put at
// the paths of an app's input and terminal size FIFOs (a symbolic link
// to a host file, a regular file) makes the CRI's log writer
// (nscn-grpc cri-log-writer, which runs on the host as root) refuse to
// start; nothing is written where the link points, nor to the file.
func TestCRILogWriterRefusesPlantedFIFOs(t *testing.T) {
	grpc := filepath.Join(filepath.Dir(nscnBin(t)), "nscn-grpc")
	if _, err := os.Stat(grpc); err != nil {
		t.Fatalf("nscn-grpc beside nscn: %v", err)
	}
	const app = "victim"
	for _, tt := range []struct {
		name, flag, path string
		plant            func(t *testing.T, p, hostFile string)
	}{
		{name: "resize FIFO a symbolic link", flag: "--resize=", path: stage1abi.AppResizeFIFO(app), plant: func(t *testing.T, p, hostFile string) {
			if err := os.Symlink(hostFile, p); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "resize FIFO a regular file", flag: "--resize=", path: stage1abi.AppResizeFIFO(app), plant: func(t *testing.T, p, _ string) {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "stdin FIFO a symbolic link", flag: "--stdin=", path: stage1abi.AppInputFIFO(app), plant: func(t *testing.T, p, hostFile string) {
			if err := os.Symlink(hostFile, p); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			podDir := t.TempDir()
			hostFile := filepath.Join(t.TempDir(), "host-secret")
			if err := os.WriteFile(hostFile, []byte("untouched"), 0o600); err != nil {
				t.Fatal(err)
			}
			out := stage1abi.AppOutputFIFO(app, stage1abi.LogStreamStdout)
			if err := os.MkdirAll(filepath.Join(podDir, filepath.Dir(out)), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{stage1abi.LogStreamStdout, stage1abi.LogStreamStderr} {
				if err := unix.Mkfifo(filepath.Join(podDir, stage1abi.AppOutputFIFO(app, s)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			tt.plant(t, filepath.Join(podDir, tt.path), hostFile)
			ready, readyW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = ready.Close() }()
			cmd := exec.Command(grpc, "cri-log-writer", //nolint:gosec // G204: the built nscn-grpc, the test's paths
				"--pod-dir="+podDir,
				"--stdout="+stage1abi.AppOutputFIFO(app, stage1abi.LogStreamStdout),
				"--stderr="+stage1abi.AppOutputFIFO(app, stage1abi.LogStreamStderr),
				tt.flag+tt.path,
				"--control="+filepath.Join(t.TempDir(), "c.sock"))
			cmd.ExtraFiles = []*os.File{readyW}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			_ = readyW.Close()
			// Its verdict on fd 3: "ok" once it has opened everything.
			verdict, _ := io.ReadAll(ready)
			if strings.TrimSpace(string(verdict)) == "ok" {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("the log writer started with a planted %s", tt.path)
			}
			if err := cmd.Wait(); err == nil {
				t.Fatalf("the log writer exited 0 with a planted %s: %s", tt.path, verdict)
			}
			t.Logf("refused: %s", strings.TrimSpace(string(verdict)))
			if b, _ := os.ReadFile(hostFile); string(b) != "untouched" { //nolint:gosec // G304: the test's file
				t.Fatalf("the host file now holds %q", b)
			}
		})
	}
}
