package entrypoint

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/stage1/nspawn"
)

// TestNspawnSeccompOff: systemd-nspawn's own filter is off for a mutable
// pod (its apps install theirs) and when the operator turned seccomp
// off, and only then.
func TestNspawnSeccompOff(t *testing.T) {
	for _, tc := range []struct {
		name              string
		disabled, mutable bool
		want              bool
	}{
		{name: "run", want: false},
		{name: "run, --insecure-options=seccomp", disabled: true, want: true},
		{name: "app sandbox", mutable: true, want: true},
		{name: "app sandbox, --insecure-options=seccomp", disabled: true, mutable: true, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nspawnSeccompOff(tc.disabled, tc.mutable)
			if got != tc.want {
				t.Fatalf("nspawnSeccompOff(%v, %v) = %v, want %v", tc.disabled, tc.mutable, got, tc.want)
			}
			if env := nspawn.Env(false, got); slices.Contains(env, "SYSTEMD_SECCOMP=0") != tc.want {
				t.Fatalf("systemd-nspawn's environment %q: SYSTEMD_SECCOMP=0 present = %v, want %v", env, !tc.want, tc.want)
			}
		})
	}
}

// writePodFilesPod is a pod of two apps, and the directory run finds:
// the stage1 rootfs with its /nscn.
func writePodFilesPod(t *testing.T) (string, sdpod.Pod) {
	t.Helper()
	podDir := t.TempDir()
	if err := os.MkdirAll(inStage1(podDir, "/nscn"), 0o755); err != nil {
		t.Fatal(err)
	}
	var pod sdpod.Pod
	pod.UUID = "4f6faa14-2d0b-4d3c-a22a-42fc36492f5e"
	for _, name := range []string{"one", "two"} {
		var a sdpod.App
		a.Spec.Name = name
		pod.Apps = append(pod.Apps, a)
	}
	return podDir, pod
}

// TestWritePodFiles: the units, written on a goroutine of their own,
// and the helpers' config and FIFOs, written meanwhile, are all there
// once writePodFiles returns; a file that exists already fails it, with
// the other files' writes ended, whichever side failed.
func TestWritePodFiles(t *testing.T) {
	t.Run("written", func(t *testing.T) {
		podDir, pod := writePodFilesPod(t)
		if err := writePodFiles(podDir, pod, false); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"default.target", "app-one.service", "app-two.service", "nscn-exit.service"} {
			if _, err := os.Stat(filepath.Join(inStage1(podDir, sdpod.UnitDir), u)); err != nil {
				t.Errorf("unit %s: %v", u, err)
			}
		}
		data, err := os.ReadFile(inStage1(podDir, sdpod.PodConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		var got sdpod.Pod
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("pod config: %v", err)
		}
		if got.UUID != pod.UUID || len(got.Apps) != 2 {
			t.Fatalf("pod config %+v, want the pod written", got)
		}
		for _, a := range []string{"one", "two"} {
			for _, p := range []string{sdpod.AppStdoutFIFO(a), sdpod.AppStderrFIFO(a)} {
				st, err := os.Lstat(inStage1(podDir, p))
				if err != nil || st.Mode().Type() != fs.ModeNamedPipe {
					t.Errorf("%s: %v, %v; want a FIFO", p, st, err)
				}
			}
		}
	})
	for _, tc := range []struct {
		name    string
		present []string // pod paths made before the call
		want    []string // in the error
	}{
		{name: "a unit exists", present: []string{sdpod.UnitDir + "/app-two.service"}, want: []string{"write unit", "app-two.service"}},
		{name: "the config exists", present: []string{sdpod.PodConfigFile}, want: []string{filepath.Base(sdpod.PodConfigFile)}},
		{name: "both exist", present: []string{sdpod.UnitDir + "/default.target", sdpod.PodConfigFile}, want: []string{"default.target", filepath.Base(sdpod.PodConfigFile)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			podDir, pod := writePodFilesPod(t)
			for _, p := range tc.present {
				if err := os.MkdirAll(filepath.Dir(inStage1(podDir, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(inStage1(podDir, p), []byte("before\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := writePodFiles(podDir, pod, false)
			if err == nil {
				t.Fatal("writePodFiles over existing files: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			for _, p := range tc.present {
				if data, err := os.ReadFile(inStage1(podDir, p)); err != nil || string(data) != "before\n" {
					t.Errorf("%s: %q, %v; want it left as it was", p, data, err)
				}
			}
		})
	}
}
