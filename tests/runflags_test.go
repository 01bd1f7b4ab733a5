//go:build functional && fly

package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
)

func TestFlyReadonlyRootfsAndInteractive(t *testing.T) {
	e := newEnv(t)
	r := e.sh(`touch /newfile 2>/dev/null && echo writable || echo read-only`, "--readonly-rootfs")
	if strings.TrimSpace(r.stdout) != "read-only" {
		t.Fatalf("--readonly-rootfs: app saw %q (%s)", r.stdout, r.stderr)
	}
	if r := e.sh(`touch /newfile && echo writable`); strings.TrimSpace(r.stdout) != "writable" {
		t.Fatalf("default rootfs not writable: %q %s", r.stdout, r.stderr)
	}
	// --interactive hands the app nscn's stdin; without it the app reads
	// /dev/null.
	r = e.runIn([]byte("typed by the user\n"), "--insecure-options=image", "run", "--interactive", busybox(t), "--exec=/bin/sh", "--", "-c", "read line; echo got: $line")
	if strings.TrimSpace(r.stdout) != "got: typed by the user" {
		t.Fatalf("--interactive: %q %s", r.stdout, r.stderr)
	}
	r = e.runIn([]byte("typed by the user\n"), "--insecure-options=image", "run", busybox(t), "--exec=/bin/sh", "--", "-c", "read line; echo got: $line")
	if strings.TrimSpace(r.stdout) != "got:" {
		t.Fatalf("without --interactive the app read %q", r.stdout)
	}
	e.fails("exactly one app", "--insecure-options=image", "run", "--interactive", busybox(t), "--name=a", "---", busybox(t), "--name=b")
}

func TestFlyResourceFlagsLandInThePodManifest(t *testing.T) {
	e := newEnv(t)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.ok("--insecure-options=image", "prepare", "--uuid-file-save", uuidFile, busybox(t), "--memory=64Mi", "--cpu=500m")
	uuid := strings.TrimSpace(readFile(t, uuidFile))
	var pm schema.PodManifest
	if err := json.Unmarshal([]byte(e.ok("cat-manifest", uuid).stdout), &pm); err != nil {
		t.Fatal(err)
	}
	isos := pm.Apps[0].App.Isolators
	got := map[string]string{}
	for _, i := range isos {
		var v struct{ Request, Limit string }
		if err := json.Unmarshal(*i.ValueRaw, &v); err != nil {
			t.Fatal(err)
		}
		got[i.Name.String()] = v.Request + "/" + v.Limit
	}
	if got["resource/memory"] != "64Mi/64Mi" || got["resource/cpu"] != "500m/500m" {
		t.Fatalf("isolators in the pod manifest: %v", got)
	}
	e.ok("gc", "--expire-prepared=0s", "--grace-period=0s")
	// The fly flavor enforces no isolator, and says so (appc requires it).
	r := e.ok("--insecure-options=image", "run", busybox(t), "--memory=64Mi", "--exec=/bin/true")
	if !strings.Contains(r.stderr, "isolator not enforced") || !strings.Contains(r.stderr, "resource/memory") {
		t.Fatalf("fly did not report the ignored isolator: %q", r.stderr)
	}
}

func TestFlyPodManifestFlag(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", busybox(t)).stdout)
	full := strings.TrimSpace(e.ok("fetch", "--full", id).stdout)
	pm := map[string]any{
		"acKind":    "PodManifest",
		"acVersion": "0.8.11",
		"apps": []any{map[string]any{
			"name":  "from-manifest",
			"image": map[string]any{"id": full},
			"app": map[string]any{
				"exec":        []string{"/bin/sh", "-c", "echo $WHO; exit 6"},
				"user":        "0",
				"group":       "0",
				"environment": []map[string]string{{"name": "WHO", "value": "pod manifest"}},
			},
		}},
	}
	b, _ := json.Marshal(pm)
	p := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.run("run", "--pod-manifest", p)
	if r.code != 6 || strings.TrimSpace(r.stdout) != "pod manifest" {
		t.Fatalf("--pod-manifest run: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	e.fails("conflict", "run", "--pod-manifest", p, busybox(t))
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.fails("pod manifest", "run", "--pod-manifest", bad)
}

func TestStage1FromTheStore(t *testing.T) {
	e := newEnv(t)
	fly := filepath.Join(filepath.Dir(nscnBin(t)), "stage1-fly.aci")
	id := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", fly).stdout)
	tests := []struct {
		name string
		flag string
	}{
		{name: "by hash", flag: "--stage1-hash=" + id},
		{name: "by name", flag: "--stage1-name=nosecone.dev/nscn/stage1-fly"},
		{name: "by path", flag: "--stage1-path=" + fly},
		{name: "from dir", flag: "--stage1-from-dir=stage1-fly.aci"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run("--insecure-options=image", "run", tt.flag, busybox(t), "--exec=/bin/sh", "--", "-c", "echo ok")
			if r.code != 0 || strings.TrimSpace(r.stdout) != "ok" {
				t.Fatalf("exit %d %q %s", r.code, r.stdout, r.stderr)
			}
		})
	}
	// A stage1 from a path is an image like any other: unsigned is refused.
	e.fails("not signed", "run", "--stage1-path="+fly, busybox(t))
	// stage1.d in the local config chooses the default.
	if err := os.MkdirAll(filepath.Join(e.local, "stage1.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, _ := json.Marshal(map[string]string{"nscnKind": "stage1", "nscnVersion": "v1", "location": fly})
	if err := os.WriteFile(filepath.Join(e.local, "stage1.d", "fly.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r := e.run("--insecure-options=image", "run", busybox(t), "--exec=/bin/sh", "--", "-c", "echo configured")
	out.WriteString(r.stdout)
	if r.code != 0 || strings.TrimSpace(out.String()) != "configured" {
		t.Fatalf("stage1.d default: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
}
