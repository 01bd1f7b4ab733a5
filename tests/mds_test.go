//go:build functional && nspawn

package tests

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostGetStatus GETs url from the host (the test) and returns the status.
func hostGetStatus(t *testing.T, url string) int {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// The isolation script B runs: every line is name=result, where result is
// what the service answered (a body, or "refused" for an HTTP error).
const mdsProbeScript = `
get() { wget -q -O - "$@" 2>/dev/null || echo refused; }
status() { if wget -q -O /dev/null "$@" 2>/dev/null; then echo ok; else echo refused; fi; }
base=${AC_METADATA_URL%/*}
echo "url=$AC_METADATA_URL"
echo "uuid=$(get "$AC_METADATA_URL/acMetadata/v1/pod/uuid")"
echo "notoken=$(get "$base/acMetadata/v1/pod/uuid")"
echo "badtoken=$(get "$base/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/acMetadata/v1/pod/uuid")"
echo "otherapp=$(get "$AC_METADATA_URL/acMetadata/v1/apps/$OTHER_APP/image/id")"
echo "ownapp=$(get "$AC_METADATA_URL/acMetadata/v1/apps/$AC_APP_NAME/image/id")"
sig=$(get --post-data "content=hello" "$AC_METADATA_URL/acMetadata/v1/pod/hmac/sign" | sed 's/+/%2B/g; s|/|%2F|g; s/=/%3D/g')
echo "verifyself=$(status --post-data "content=hello&uuid=$AC_SELF&signature=$sig" "$AC_METADATA_URL/acMetadata/v1/pod/hmac/verify")"
echo "verifyother=$(status --post-data "content=hello&uuid=$OTHER_UUID&signature=$sig" "$AC_METADATA_URL/acMetadata/v1/pod/hmac/verify")"
`

// TestNspawnMetadataIsolation runs two registered pods against one
// metadata service and checks that each is answered only about itself: a
// pod's own token gives its own UUID and apps, while no token, a made-up
// token, another pod's app and another pod's identity are refused. gc
// unregisters the pods.
func TestNspawnMetadataIsolation(t *testing.T) {
	e := newEnv(t)
	svc := startMDS(t)
	dir := t.TempDir()
	mdsFlags := []string{"--mds-register", "--mds-socket=" + svc.Socket}

	// Pod A prints its URL and UUID, and stays registered (exited, not
	// collected) while B runs.
	uuidA := filepath.Join(dir, "a.uuid")
	ra := e.nspawnRun(append(mdsFlags, "--uuid-file-save="+uuidA, busybox(t), "--name=app-a", "--exec=/bin/sh", "--", "-c",
		`echo "url=$AC_METADATA_URL"; echo "uuid=$(wget -q -O - "$AC_METADATA_URL/acMetadata/v1/pod/uuid")"`)...)
	if ra.code != 0 {
		t.Fatalf("pod A: exit %d\nstdout: %s\nstderr: %s", ra.code, ra.stdout, ra.stderr)
	}
	podA := readUUID(t, uuidA)
	urlA := outputValue(t, ra, "url")
	if want := fmt.Sprintf("http://127.0.0.1:%d/", svc.Port); !strings.HasPrefix(urlA, want) || len(urlA) <= len(want) {
		t.Fatalf("pod A's AC_METADATA_URL %q, want %s<token>", urlA, want)
	}
	if got := outputValue(t, ra, "uuid"); got != podA {
		t.Fatalf("pod A read its uuid as %q, want %s", got, podA)
	}

	uuidB := filepath.Join(dir, "b.uuid")
	rb := e.nspawnRun(append(mdsFlags, "--uuid-file-save="+uuidB, busybox(t), "--name=app-b",
		"--set-env=OTHER_APP=app-a", "--set-env=OTHER_UUID="+podA, "--exec=/bin/sh", "--", "-c",
		`AC_SELF=$(wget -q -O - "$AC_METADATA_URL/acMetadata/v1/pod/uuid"); `+mdsProbeScript)...)
	if rb.code != 0 {
		t.Fatalf("pod B: exit %d\nstdout: %s\nstderr: %s", rb.code, rb.stdout, rb.stderr)
	}
	podB := readUUID(t, uuidB)
	if urlB := outputValue(t, rb, "url"); urlB == urlA {
		t.Fatalf("pods A and B got the same AC_METADATA_URL %q", urlB)
	}
	checks := []struct {
		name, key, want string
	}{
		{name: "own uuid", key: "uuid", want: podB},
		{name: "no token", key: "notoken", want: "refused"},
		{name: "made-up token", key: "badtoken", want: "refused"},
		{name: "the other pod's app", key: "otherapp", want: "refused"},
		{name: "own signature verifies", key: "verifyself", want: "ok"},
		{name: "own signature is not the other pod's", key: "verifyother", want: "refused"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if got := outputValue(t, rb, c.key); got != c.want {
				t.Errorf("%s = %q, want %q\nstdout: %s", c.key, got, c.want, rb.stdout)
			}
		})
	}
	if got := outputValue(t, rb, "ownapp"); !strings.HasPrefix(got, "sha512-") {
		t.Errorf("own app's image id = %q, want sha512-…", got)
	}

	// A's token still works from the host until gc unregisters A.
	if st := hostGetStatus(t, urlA+"/acMetadata/v1/pod/uuid"); st != http.StatusOK {
		t.Fatalf("GET with pod A's token before gc = %d, want 200", st)
	}
	assertPodsGone(t, e)
	if st := hostGetStatus(t, urlA+"/acMetadata/v1/pod/uuid"); st != http.StatusForbidden {
		t.Fatalf("GET with pod A's token after gc = %d, want 403", st)
	}
}

// TestNspawnMetadataRegisterFlag checks --mds-register: =true with no
// service fails before the pod runs and leaves no pod; =false runs the pod
// unregistered, without AC_METADATA_URL, though a service is running.
func TestNspawnMetadataRegisterFlag(t *testing.T) {
	e := newEnv(t)
	none := filepath.Join(t.TempDir(), "none.sock")
	sh := func(script string, podFlags ...string) result {
		t.Helper()
		return e.nspawnRun(append(podFlags, busybox(t), "--exec=/bin/sh", "--", "-c", script)...)
	}
	t.Run("required but not running", func(t *testing.T) {
		r := sh("echo ran", "--mds-register=true", "--mds-socket="+none)
		if r.code == 0 || strings.Contains(r.stdout, "ran") || !strings.Contains(r.stderr, "no metadata service answers on "+none) {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		assertNoPods(t, e)
	})
	svc := startMDS(t)
	t.Run("refused while running", func(t *testing.T) {
		r := sh(`echo "url=${AC_METADATA_URL:-none}"`, "--mds-register=false", "--mds-socket="+svc.Socket)
		if r.code != 0 || outputValue(t, r, "url") != "none" {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("default registers when running", func(t *testing.T) {
		r := sh(`echo "uuid=$(wget -q -O - "$AC_METADATA_URL/acMetadata/v1/pod/uuid")"`, "--mds-socket="+svc.Socket)
		if r.code != 0 || len(outputValue(t, r, "uuid")) != 36 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
	assertPodsGone(t, e)
}
