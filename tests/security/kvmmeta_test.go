//go:build functional

package security

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/mdsclient"
	"github.com/nosecone/nscn/internal/testutil/mdstest"
)

// kvmMetadataAttack is what the app of TestKvmMetadataServerStaysOnItsPod
// runs: every line is name=answer, "refused" for an HTTP error.
const kvmMetadataAttack = `
g() { wget -q -O - "$1" 2>/dev/null || echo refused; }
m=http://127.0.0.1:18112
echo "url=$AC_METADATA_URL"
echo "own=$(g "$m/acMetadata/v1/pod/uuid")"
echo "othertoken=$(g "$m/$OTHER_TOKEN/acMetadata/v1/pod/uuid")"
echo "dotdot=$(g "$m/acMetadata/v1/../../$OTHER_TOKEN/acMetadata/v1/pod/uuid")"
echo "appdotdot=$(g "$m/acMetadata/v1/apps/../../../$OTHER_TOKEN/acMetadata/v1/pod/uuid")"
echo "encoded=$(g "$m/acMetadata/v1/apps/..%2F..%2F..%2F$OTHER_TOKEN%2FacMetadata%2Fv1%2Fpod/uuid")"
gw=$(ip route | awk '/^default/ {print $3}')
echo "hostnotoken=$(g "http://$gw:$MDS_PORT/acMetadata/v1/pod/uuid")"
echo "config=$(cat /nscn/state/kvm-metadata.json 2>/dev/null || echo unreadable)"
env
`

// TestKvmMetadataServerStaysOnItsPod: stage1-kvm's guest answers the
// metadata API to the pod's apps (guest.MetadataProxy) and holds the
// pod's token towards the host's service, which it adds to what it
// forwards. An app of the pod, given another registered pod's token,
// must not reach that pod's answers through the guest's server (the
// token in the path, ".." segments, encoded slashes); it must not get its
// own pod's token (not in its environment, not from the guest's
// configuration file, out of its root), and the host's service must not
// answer it without the token. One guest boot, seconds under TCG.
func TestKvmMetadataServerStaysOnItsPod(t *testing.T) {
	e := newEnv(t)
	svc := mdstest.Start(t, nscnBin(t), true)
	otherUUID := "0f4d2c1a-9b8e-4c7d-a6f5-e4d3c2b1a098"
	otherToken, err := mdsclient.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := mdsclient.Register(ctx, svc.Socket, mdsclient.Registration{
		UUID:           otherUUID,
		PodManifest:    json.RawMessage(`{"acVersion":"0.8.11","acKind":"PodManifest","apps":[{"name":"victim","image":{"name":"example.com/victim","id":"sha512-aaaa0000000000000000000000000000000000000000000000000000000000000000"}}]}`),
		ImageManifests: map[string]json.RawMessage{"victim": json.RawMessage(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/victim"}`)},
		Token:          otherToken,
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.run("gc", "--grace-period=0s") })
	r := e.run("--insecure-options=image", "run", "--net=default", "--stage1-from-dir=stage1-kvm.aci",
		"--mds-register", "--mds-socket="+svc.Socket, busyboxACI(t),
		"--set-env=OTHER_TOKEN="+otherToken, "--set-env=MDS_PORT="+strconv.Itoa(svc.Port),
		"--exec=/bin/sh", "--", "-c", kvmMetadataAttack)
	if r.code != 0 {
		t.Fatalf("the pod: %s", r)
	}
	values := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			if _, dup := values[k]; !dup {
				values[k] = v
			}
		}
	}
	if got := values["url"]; got != "http://127.0.0.1:18112" {
		t.Fatalf("AC_METADATA_URL = %q, want the guest's server", got)
	}
	if got := values["own"]; len(got) != len(otherUUID) || got == otherUUID {
		t.Fatalf("the app's own pod UUID through the guest's server: %q (the test is blind)", got)
	}
	for _, k := range []string{"othertoken", "dotdot", "appdotdot", "encoded", "hostnotoken"} {
		if got := values[k]; got != "refused" {
			t.Errorf("%s = %q, want refused", k, got)
		}
	}
	if got := values["config"]; got != "unreadable" {
		t.Errorf("the app read the guest's metadata configuration: %q", got)
	}
	if strings.Contains(r.stdout, otherUUID) {
		t.Errorf("the app read the other pod's UUID:\n%s", r.stdout)
	}
	tok, err := os.ReadFile(filepath.Join(e.podDir(), "mds-token"))
	if err != nil || len(strings.TrimSpace(string(tok))) < 22 {
		t.Fatalf("the pod's token file: %q, %v", tok, err)
	}
	if strings.Contains(r.stdout, strings.TrimSpace(string(tok))) {
		t.Errorf("the app holds its pod's token:\n%s", r.stdout)
	}
}
