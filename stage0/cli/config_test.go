//go:build !nscn_nofetch

package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

func TestConfig(t *testing.T) {
	cfg := newTrustConfig(t)
	write := func(dir, name, data string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg.system, "auth.d/10-basic.json", `{"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"basic","credentials":{"user":"alice","password":"hunter2"}}`)
	write(cfg.local, "auth.d/20-oauth.json", `{"nscnKind":"auth","nscnVersion":"v1","domains":["example.org"],"type":"oauth","credentials":{"token":"s3cr3t-token"}}`)
	write(cfg.local, "auth.d/30-docker.json", `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["quay.io"],"credentials":{"user":"bob","password":"pa55"}}`)
	testutil.WriteStage1Default(t, cfg.local, "/opt/stage1-fly.aci")
	f := newTrustFixture(t)
	if _, stderr, err := cfg.run(t, "", "trust", "--skip-fingerprint-review", "--prefix", "example.com/app", f.edFile); err != nil {
		t.Fatalf("trust: %v\n%s", err, stderr)
	}
	fpr := f.edFpr

	stdout, stderr, err := cfg.run(t, "", "--dir", t.TempDir(), "config")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, stderr)
	}
	for _, secret := range []string{"hunter2", "s3cr3t-token", "pa55"} {
		if strings.Contains(stdout, secret) {
			t.Fatalf("secret %q printed:\n%s", secret, stdout)
		}
	}
	var out struct {
		Stage0 []map[string]any `json:"stage0"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	byKind := map[string][]map[string]any{}
	for _, e := range out.Stage0 {
		if e["nscnVersion"] != "v1" {
			t.Fatalf("entry without version: %v", e)
		}
		k, _ := e["nscnKind"].(string)
		byKind[k] = append(byKind[k], e)
	}
	tests := []struct {
		name, kind string
		n          int
		want       []string // fragments of the entries' JSON
	}{
		{name: "paths", kind: "paths", n: 1, want: []string{`"local-config":"` + cfg.local, `"system-config":"` + cfg.system, `"stage1-images":[`}},
		{name: "stage1 from stage1.d", kind: "stage1", n: 1, want: []string{`"location":"/opt/stage1-fly.aci"`, `stage1.d`}},
		{name: "auth, secrets masked, users kept", kind: "auth", n: 2, want: []string{`"user":"alice"`, `"password":"******"`, `"token":"******"`, `"domains":["example.org"]`}},
		{name: "dockerAuth", kind: "dockerAuth", n: 1, want: []string{`"registries":["quay.io"]`, `"user":"bob"`, `"password":"******"`}},
		{name: "trusted keys", kind: "trustedKey", n: 1, want: []string{`"prefix":"example.com/app"`, `"fingerprint":"` + fpr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := byKind[tt.kind]
			b, _ := json.Marshal(got)
			if len(got) != tt.n {
				t.Fatalf("%d %s entries, want %d: %s", len(got), tt.kind, tt.n, b)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Fatalf("%s entries lack %s: %s", tt.kind, w, b)
				}
			}
		})
	}

	// A broken auth file fails the command, naming it.
	write(cfg.local, "auth.d/40-bad.json", `{"rktKind":"auth"`)
	if _, _, err := cfg.run(t, "", "--dir", t.TempDir(), "config"); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "40-bad.json") {
		t.Fatalf("broken auth file: %v", err)
	}
}
