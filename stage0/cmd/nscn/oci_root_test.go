package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/oci/ocitest"
	"github.com/nosecone/nscn/internal/testutil"
)

// TestRunDockerImage runs an image from a registry on loopback with the
// built nscn and the fly stage1: `nscn run docker://127.0.0.1:PORT/…`,
// and checks what the app saw (entrypoint and cmd, user and primary
// group, working directory, environment, a whiteout applied). It needs
// root and bin/stage1-fly.aci (make stage1-fly).
func TestRunDockerImage(t *testing.T) {
	testutil.RequiresRoot(t)
	stage1 := filepath.Join("..", "..", "..", "bin", "stage1-fly.aci")
	if _, err := os.Stat(stage1); err != nil {
		if testutil.InCI() {
			t.Fatalf("%s: %v (make all builds it)", stage1, err)
		}
		t.Skipf("%s is missing: run make stage1-fly", stage1)
	}
	stage1, _ = filepath.Abs(stage1)
	tmp := t.TempDir()
	nscn := filepath.Join(tmp, "nscn")
	probe := filepath.Join(tmp, "probe")
	for _, b := range []struct{ out, pkg string }{{nscn, "."}, {probe, "./testdata/ociprobe"}} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.out, b.pkg) //nolint:gosec // G204: the test's own build
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	probeBin, err := os.ReadFile(probe) //nolint:gosec // G304: the test's own build
	if err != nil {
		t.Fatal(err)
	}
	reg := ocitest.NewRegistry(t)
	base := ocitest.Tar(t, ocitest.Dir("bin/"), ocitest.Exe("bin/probe", string(probeBin)), ocitest.Dir("etc/"),
		ocitest.File("etc/passwd", "root:x:0:0::/root:/bin/sh\nweb:x:33:44::/srv:/bin/sh\n"), ocitest.File("etc/group", "root:x:0:\nweb:x:44:\n"),
		ocitest.File("etc/motd", "hello"), ocitest.Dir("srv/"))
	upper := ocitest.Tar(t, ocitest.File("etc/.wh.motd", ""))
	img := ocitest.Image(t, v1.Config{Entrypoint: []string{"/bin/probe"}, Cmd: []string{"from-cmd"}, User: "web", WorkingDir: "/srv", Env: []string{"FOO=bar"}},
		ocitest.Layer(t, base), ocitest.Layer(t, upper))
	reg.Push(t, "nscn/probe:v1", img)

	dataDir, localConfig := filepath.Join(tmp, "data"), filepath.Join(tmp, "etc")
	testutil.WriteStage1Default(t, localConfig, stage1)
	ref := "docker://" + reg.Host + "/nscn/probe:v1"
	t.Cleanup(func() {
		// The exited pods' overlays go with them.
		gc := exec.Command(nscn, "--dir", dataDir, "gc", "--grace-period=0s") //nolint:gosec // G204: the test's own build
		if out, err := gc.CombinedOutput(); err != nil {
			t.Errorf("nscn gc: %v\n%s", err, out)
		}
		if err := mountplan.UnmountAll(context.Background(), dataDir); err != nil {
			t.Errorf("unmount test pods: %v", err)
		}
	})
	run := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		all := append([]string{"--dir", dataDir, "--local-config", localConfig, "--system-config", filepath.Join(tmp, "none")}, args...)
		cmd := exec.CommandContext(ctx, nscn, all...) //nolint:gosec // G204: the test's own build
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			t.Logf("nscn %s: %v\nstderr: %s", strings.Join(args, " "), err, errb.String())
		}
		return out.String() + errb.String(), err
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "image's entrypoint and cmd", args: []string{"--insecure-options=http,image", "run", ref},
			want: "probe args=[from-cmd] uid=33 gid=44 cwd=/srv FOO=bar motd=absent",
		},
		{
			name: "arguments replace cmd", args: []string{"--insecure-options=http,image", "run", ref, "--", "a", "b"},
			want: "probe args=[a b] uid=33 gid=44",
		},
		{
			name: "user and exec overridden", args: []string{"--insecure-options=http,image", "run", ref, "--user=0", "--group=0", "--exec=/bin/probe"},
			want: "probe args=[] uid=0 gid=0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, tt.want) {
				t.Fatalf("output %q does not hold %q", out, tt.want)
			}
		})
	}
	t.Run("a tag without --insecure-options=image is refused", func(t *testing.T) {
		out, err := run(t, "--insecure-options=http", "run", ref)
		if err == nil || !strings.Contains(out, "@sha256:") {
			t.Fatalf("got %v, output %q; want a refusal naming the digest", err, out)
		}
	})
	t.Run("image list shows the reference and digest", func(t *testing.T) {
		out, err := run(t, "image", "list", "--fields=name,source", "--no-legend")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, ref+"@sha256:") {
			t.Fatalf("image list %q does not show %s@sha256:…", out, ref)
		}
	})
}
