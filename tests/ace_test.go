//go:build functional && (nspawn || kvm)

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/testutil/mdstest"
)

// startMDS runs "nscn metadata-service" until the test ends
// (mdstest.Start); listenAll makes its metadata API listen on every
// address, for pods on a network of their own.
func startMDS(t *testing.T, listenAll ...bool) mdstest.Service {
	t.Helper()
	return mdstest.Start(t, nscnBin(t), len(listenAll) > 0 && listenAll[0])
}

// aceValidator runs appc's own conformance check, the ACE validator
// (scripts/build-ace-images.sh builds it from the appc/spec module), as
// appc runs it, on the stage1 image aci: the main and sidekick images in
// one pod on the network net, with the "database" volume and a metadata
// service.
// Every app and event handler prints "<mode> OK" only when what it checks
// holds: PATH, AC_APP_NAME, the working directory, the environment, the
// /db mount, the order of pre-start, main and post-stop, the shared
// volume, and the metadata service (pod and app metadata, HMAC sign and
// verify). The main image's resource/memory isolator must not fail the
// run, whether the stage1 enforces it or reports it ignored.
func aceValidator(t *testing.T, aci, net string) {
	// On a network of its own, a failed run must not leave the pod's
	// network behind: newNetEnv collects the pods however the test ends.
	var e *env
	if net == "host" {
		e = newEnv(t)
	} else {
		e = newNetEnv(t)
	}
	// On the default network the pod reaches the service at the host
	// side of its veth, so the service listens beyond loopback.
	svc := startMDS(t, net != "host")
	r := e.run("--insecure-options=image", "run", "--net="+net, "--stage1-path="+aci,
		"--mds-register", "--mds-socket="+svc.Socket, "--volume", "database,kind=empty",
		filepath.Join(imagesDir(t), "ace-validator-main.aci"),
		filepath.Join(imagesDir(t), "ace-validator-sidekick.aci"))
	if r.code != 0 {
		t.Errorf("exit %d, want 0", r.code)
	}
	out := r.stdout + r.stderr
	for _, mode := range []string{"prestart", "main", "sidekick", "poststop"} {
		if !strings.Contains(out, mode+" OK\n") {
			t.Errorf("the validator printed no %q", mode+" OK")
		}
	}
	if strings.Contains(out, " FAIL\n") || t.Failed() {
		t.Fatalf("ACE validator failed\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	assertPodsGone(t, e)
}

// outputValue returns the value of the line "key=value" an app printed.
func outputValue(t *testing.T, r result, key string) string {
	t.Helper()
	for _, l := range strings.Split(r.stdout, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	t.Fatalf("the app printed no %s= line\nstdout: %s\nstderr: %s", key, r.stdout, r.stderr)
	return ""
}

// readUUID reads a pod UUID that --uuid-file-save wrote.
func readUUID(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
