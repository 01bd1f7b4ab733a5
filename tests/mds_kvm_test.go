//go:build functional && kvm

package tests

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// kvmMetadataScript is what the app of TestKvmMetadata runs: every line is
// name=answer, "refused" for an HTTP error.
const kvmMetadataScript = `
get() { wget -q -O - "$@" 2>/dev/null || echo refused; }
u=$AC_METADATA_URL
echo "url=$u"
echo "uuid=$(get "$u/acMetadata/v1/pod/uuid")"
echo "manifest=$(get "$u/acMetadata/v1/pod/manifest")"
echo "imageid=$(get "$u/acMetadata/v1/apps/$AC_APP_NAME/image/id")"
echo "imagemanifest=$(get "$u/acMetadata/v1/apps/$AC_APP_NAME/image/manifest")"
echo "annotations=$(get "$u/acMetadata/v1/apps/$AC_APP_NAME/annotations")"
echo "otherapp=$(get "$u/acMetadata/v1/apps/nosuchapp/image/id")"
sig=$(get --post-data "content=hello" "$u/acMetadata/v1/pod/hmac/sign" | sed 's/+/%2B/g; s|/|%2F|g; s/=/%3D/g')
self=$(get "$u/acMetadata/v1/pod/uuid")
if wget -q -O /dev/null --post-data "content=hello&uuid=$self&signature=$sig" "$u/acMetadata/v1/pod/hmac/verify" 2>/dev/null; then echo verify=ok; else echo verify=refused; fi
`

// TestKvmMetadata reads the metadata service's answers from an app of a
// registered kvm pod on the default network, through the guest's metadata
// server (guest.MetadataProxy), and checks them against the pod: its
// UUID, its manifest as nscn cat-manifest prints it, the app's image ID,
// image manifest and annotations, and a signature of the pod that
// verifies. The app's AC_METADATA_URL is the guest's server,
// without the pod's token.
func TestKvmMetadata(t *testing.T) {
	e := newNetEnv(t)
	svc := startMDS(t, true)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	r := e.run(kvmRunArgs(t, "--net=default", "--mds-register", "--mds-socket="+svc.Socket, "--uuid-file-save="+uuidFile,
		busybox(t), "--name=reader",
		"--exec=/bin/sh", "--", "-c", kvmMetadataScript)...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	uuid := readUUID(t, uuidFile)
	var pod struct {
		Apps []struct {
			Name  string `json:"name"`
			Image struct {
				ID string `json:"id"`
			} `json:"image"`
		} `json:"apps"`
	}
	cat := e.ok("cat-manifest", uuid)
	if err := json.Unmarshal([]byte(cat.stdout), &pod); err != nil {
		t.Fatalf("nscn cat-manifest: %v\n%s", err, cat.stdout)
	}
	var served, want map[string]any
	if err := json.Unmarshal([]byte(outputValue(t, r, "manifest")), &served); err != nil {
		t.Fatalf("the served pod manifest: %v\nstdout: %s", err, r.stdout)
	}
	if err := json.Unmarshal([]byte(cat.stdout), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(served, want) {
		t.Errorf("the served pod manifest is not the pod's:\nserved: %v\npod:    %v", served, want)
	}
	if len(pod.Apps) != 1 || pod.Apps[0].Name != "reader" {
		t.Fatalf("the pod's apps: %+v", pod.Apps)
	}
	var im struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(outputValue(t, r, "imagemanifest")), &im); err != nil {
		t.Errorf("the served image manifest: %v", err)
	}
	checks := []struct{ name, key, want string }{
		{name: "the guest's server, no token", key: "url", want: "http://127.0.0.1:18112"},
		{name: "pod uuid", key: "uuid", want: uuid},
		{name: "image id", key: "imageid", want: pod.Apps[0].Image.ID},
		{name: "no such app", key: "otherapp", want: "refused"},
		{name: "own signature verifies", key: "verify", want: "ok"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if got := outputValue(t, r, c.key); got != c.want {
				t.Errorf("%s = %q, want %q", c.key, got, c.want)
			}
		})
	}
	var as []map[string]string
	if err := json.Unmarshal([]byte(outputValue(t, r, "annotations")), &as); err != nil {
		t.Errorf("the served app annotations: %v", err)
	}
	if im.Name != "nosecone.dev/busybox" {
		t.Errorf("the served image manifest names %q, want nosecone.dev/busybox", im.Name)
	}
	if !strings.HasPrefix(pod.Apps[0].Image.ID, "sha512-") {
		t.Errorf("the pod's image id %q", pod.Apps[0].Image.ID)
	}
	assertPodsGone(t, e)
}
