//go:build functional

package tests

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/tests/stub-stage1/stub"
)

var (
	stubOnce sync.Once
	stubBin  string
	stubErr  error
)

// stubStage1 builds the stub stage1 binary once and packs it into an ACI
// declaring the given interface version.
func stubStage1(t *testing.T, version string) string {
	t.Helper()
	stubOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nscn-stub-") //nolint:usetesting // built once (stubOnce) for every test, so it must outlive the first
		if err != nil {
			stubErr = err
			return
		}
		stubBin = filepath.Join(dir, "stub")
		stubErr = stub.BuildBinary(context.Background(), stubBin)
	})
	if stubErr != nil {
		t.Fatalf("build stub stage1: %v", stubErr)
	}
	out := filepath.Join(t.TempDir(), "stub-"+version+".aci")
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if err := stub.WriteACI(context.Background(), f, stub.ACIOptions{Binary: stubBin, InterfaceVersion: version}); err != nil {
		t.Fatal(err)
	}
	return out
}

// onlyPod returns the directory of the single pod of the env.
func onlyPod(t *testing.T, e *env) string {
	t.Helper()
	pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*"))
	if len(pods) != 1 {
		t.Fatalf("want one pod, have %v", pods)
	}
	return pods[0]
}

func TestStage0KeepsItsSideOfTheABI(t *testing.T) {
	e := newEnv(t)
	s1 := stubStage1(t, "6")
	r := e.run("--debug", "--insecure-options=image", "run", "--stage1-path="+s1, "--hostname=abi-test",
		busybox(t), "--name=ok", "---", busybox(t), "--name=fail-5", "---", busybox(t), "--name=fail-6")
	if r.code != 5 {
		t.Fatalf("run exited %d, want 5 (the first failing app); stderr: %s", r.code, r.stderr)
	}
	podDir := onlyPod(t, e)
	recs, err := stub.ReadRecords(podDir, stub.Run)
	if err != nil || len(recs) != 1 {
		t.Fatalf("run records: %v %v", recs, err)
	}
	rec := recs[0]
	uuid := filepath.Base(podDir)
	want := []string{"--debug", "--net=default", "--local-config=" + e.local, "--hostname=abi-test", uuid}
	if strings.Join(rec.Args, " ") != strings.Join(want, " ") {
		t.Fatalf("run argv %q, want %q", rec.Args, want)
	}
	if rec.Cwd != podDir {
		t.Fatalf("run cwd %s, want the pod dir %s", rec.Cwd, podDir)
	}
	if rec.Lock == nil || !rec.Lock.Held || !rec.Lock.PodDir {
		t.Fatalf("lock not handed over: %+v", rec.Lock)
	}
	if rec.Env[stage1abi.EnvLockFD] != strconv.Itoa(rec.Lock.FD) {
		t.Fatalf("RKT_LOCK_FD %q vs fd %d", rec.Env[stage1abi.EnvLockFD], rec.Lock.FD)
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(rec.PodManifest, &pm); err != nil {
		t.Fatalf("pod manifest the stage1 read: %v", err)
	}
	if len(pm.Apps) != 3 || pm.Apps[1].Name != "fail-5" || pm.Apps[0].App == nil || pm.Apps[0].App.Exec[0] != "/bin/sh" {
		t.Fatalf("pod manifest apps: %+v", pm.Apps)
	}
	for _, app := range []string{"ok", "fail-5", "fail-6"} {
		for _, f := range []string{
			filepath.Join(podDir, stage1abi.AppRootfs(app), "bin", "busybox"),
			filepath.Join(podDir, stage1abi.AppInfoDir(app), stage1abi.AppManifestFile),
			filepath.Join(podDir, stage1abi.AppInfoDir(app), stage1abi.AppTreeIDFile),
		} {
			if _, err := os.Stat(f); err != nil {
				t.Fatalf("pod dir lacks %s: %v", f, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(podDir, stage1abi.Stage1RootfsRel, stub.BinDir, stub.Binary)); err != nil {
		t.Fatalf("stage1 rootfs not in place: %v", err)
	}
	// The pod is exited: its directory sits in run/ and nobody holds the lock.
	if filepath.Base(filepath.Dir(podDir)) != "run" {
		t.Fatalf("pod in %s, want run/", filepath.Dir(podDir))
	}
}

func TestStage1InterfaceVersions(t *testing.T) {
	tests := []struct {
		name    string
		version string
		args    []string
		want    string // stderr substring on failure; empty = success
	}{
		{name: "version 1 (annotation absent)", version: "", args: nil},
		{name: "version 5", version: "5"},
		{name: "version 8 (ready file)", version: "8"},
		{name: "newer than supported", version: "99", want: "interface version 99"},
		{name: "not a number", version: "x", want: "not a number"},
		{name: "hostname needs version 2", version: "1", args: []string{"--hostname=h"}, want: "--hostname"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s1 := stubStage1(t, tt.version)
			args := append([]string{"--insecure-options=image", "run", "--stage1-path=" + s1}, tt.args...)
			args = append(args, busybox(t))
			if tt.want == "" {
				e.ok(args...)
				return
			}
			e.fails(tt.want, args...)
			assertNoPods(t, e)
		})
	}
}
