//go:build functional

package registry

import (
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// authFile is a config file under auth.d, as rkt wrote them.
type authFile struct {
	dir  func(e *env) string // the config directory it goes in
	name string
	body map[string]any
}

// TestPrivateRepositoryNeedsCredentials pulls from a registry that wants
// htpasswd basic auth (over TLS, its CA trusted through SSL_CERT_FILE):
// without credentials, or with a wrong password, nscn is refused; with
// them from auth.d (rkt's "auth" and "dockerAuth" kinds, in the local or
// the system config directory) or from ~/.docker/config.json, it pulls
// and runs the image.
func TestPrivateRepositoryNeedsCredentials(t *testing.T) {
	reg := startRegistry(t, registryOpts{tls: true, auth: true})
	reg.push("private/greet:v1", greetImage(t))
	local := func(e *env) string { return e.local }
	system := func(e *env) string { return e.system }
	basic := func(password string) map[string]any {
		return map[string]any{
			"rktKind": "auth", "rktVersion": "v1", "domains": []string{reg.host}, "type": "basic",
			"credentials": map[string]string{"user": regUser, "password": password},
		}
	}
	docker := map[string]any{
		"rktKind": "dockerAuth", "rktVersion": "v1", "registries": []string{reg.host},
		"credentials": map[string]string{"user": regUser, "password": regPassword},
	}
	dockerConfig := map[string]any{"auths": map[string]any{
		reg.host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(regUser + ":" + regPassword))},
	}}
	tests := []struct {
		name         string
		auth         []authFile
		dockerConfig map[string]any // ~/.docker/config.json; nil for none
		ok           bool
	}{
		{name: "no credentials"},
		{name: "auth.d basic, wrong password", auth: []authFile{{local, "wrong.json", basic("not-the-password")}}},
		{name: "auth.d basic for another registry", auth: []authFile{{local, "other.json", map[string]any{
			"rktKind": "auth", "rktVersion": "v1", "domains": []string{"127.0.0.2:5000"}, "type": "basic",
			"credentials": map[string]string{"user": regUser, "password": regPassword},
		}}}},
		{name: "auth.d basic", auth: []authFile{{local, "basic.json", basic(regPassword)}}, ok: true},
		{name: "auth.d dockerAuth", auth: []authFile{{local, "docker.json", docker}}, ok: true},
		{name: "system auth.d dockerAuth", auth: []authFile{{system, "docker.json", docker}}, ok: true},
		{name: "~/.docker/config.json", dockerConfig: dockerConfig, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.extraEnv = append(e.extraEnv, "SSL_CERT_FILE="+reg.ca)
			for _, a := range tt.auth {
				writeJSON(t, filepath.Join(a.dir(e), "auth.d", a.name), a.body)
			}
			if tt.dockerConfig != nil {
				writeJSON(t, filepath.Join(e.home, ".docker", "config.json"), tt.dockerConfig)
			}
			args := runArgs(t, "image", reg.ref("private/greet:v1"))
			if !tt.ok {
				// fetch, not run: run imports its stage1 before the image.
				before := e.snapshot()
				e.refused(fetchArgs("image", reg.ref("private/greet:v1")), "unauthorized", "authentication required", "401")
				e.assertNothingStored(before)
				return
			}
			if r := e.ok(args...); !slices.Contains(lines(r.stdout), greetOutput) {
				t.Fatalf("want %q:\n%s", greetOutput, r)
			}
		})
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b)
}

// TestTLSVerified pulls from a TLS registry whose certificate a test CA
// signed: refused while the CA is unknown, unless --insecure-options=tls;
// accepted once the CA is trusted (SSL_CERT_FILE).
func TestTLSVerified(t *testing.T) {
	reg := startRegistry(t, registryOpts{tls: true})
	reg.push("greet:v1", greetImage(t))
	tests := []struct {
		name     string
		insecure string
		trustCA  bool
		ok       bool
	}{
		{name: "unknown CA", insecure: "image"},
		{name: "unknown CA, http allowed", insecure: "image,http"},
		{name: "unknown CA, --insecure-options=tls", insecure: "image,tls", ok: true},
		{name: "trusted CA", insecure: "image", trustCA: true, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.trustCA {
				e.extraEnv = append(e.extraEnv, "SSL_CERT_FILE="+reg.ca)
			}
			args := runArgs(t, tt.insecure, reg.ref("greet:v1"))
			if !tt.ok {
				// fetch, not run: run imports its stage1 before the image.
				before := e.snapshot()
				e.refused(fetchArgs(tt.insecure, reg.ref("greet:v1")), "certificate", "x509", "tls")
				e.assertNothingStored(before)
				return
			}
			if r := e.ok(args...); !slices.Contains(lines(r.stdout), greetOutput) {
				t.Fatalf("want %q:\n%s", greetOutput, r)
			}
		})
	}
}

// TestPlainHTTPNeedsInsecureOption pulls from a plain-http registry
// (through a proxy that logs every http request): without
// --insecure-options=http nscn is refused and never spoke http to it,
// loopback address or not; with it, the image runs.
func TestPlainHTTPNeedsInsecureOption(t *testing.T) {
	reg := startRegistry(t, registryOpts{})
	reg.push("greet:v1", greetImage(t))
	tests := []struct {
		name     string
		insecure string
		ok       bool
	}{
		{name: "no option", insecure: "image"},
		{name: "tls only", insecure: "image,tls"},
		{name: "--insecure-options=http", insecure: "image,http", ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, reg)
			e := newEnv(t)
			args := runArgs(t, tt.insecure, p.ref("greet:v1"))
			if tt.ok {
				if r := e.ok(args...); !slices.Contains(lines(r.stdout), greetOutput) {
					t.Fatalf("want %q:\n%s", greetOutput, r)
				}
				return
			}
			// fetch, not run: run imports its stage1 before the image.
			before := e.snapshot()
			e.refused(fetchArgs(tt.insecure, p.ref("greet:v1")), "http")
			e.assertNothingStored(before)
			if log := p.requests(); len(log) != 0 {
				t.Fatalf("refused, but spoke plain http to the registry:\n%s", p.dump())
			}
		})
	}
}

// TestTagNeedsInsecureImage: a registry image carries no signature, so a
// tag (which the registry may point anywhere) needs --insecure-options=image
// and the refusal names the digest to pin instead; a reference pinned by
// digest is verified end to end and needs no option.
func TestTagNeedsInsecureImage(t *testing.T) {
	reg := startRegistry(t, registryOpts{})
	digest := reg.push("greet:v1", greetImage(t))
	tests := []struct {
		name     string
		insecure string
		ref      string
		ok       bool
	}{
		{name: "tag", insecure: "http", ref: "greet:v1"},
		{name: "tag with image", insecure: "http,image", ref: "greet:v1", ok: true},
		{name: "digest", insecure: "http", ref: "greet@" + digest, ok: true},
		{name: "tag and digest", insecure: "http", ref: "greet:v1@" + digest, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			args := runArgs(t, tt.insecure, reg.ref(tt.ref))
			if !tt.ok {
				r := e.refused(args, digest)
				if list := e.ok("image", "list", "--format=json").stdout; strings.Contains(list, digest) {
					t.Fatalf("refused, but the image is in the store:\n%s\n%s", list, r)
				}
				return
			}
			if r := e.ok(args...); !slices.Contains(lines(r.stdout), greetOutput) {
				t.Fatalf("want %q:\n%s", greetOutput, r)
			}
		})
	}
}

// TestTagTrustedByRegistriesD: an operator's registries.d entry lets tags
// of the repositories it names in without a digest and without
// --insecure-options=image; a repository beside it (a longer name with the
// same prefix) is still refused, a broken entry trusts nothing, and nscn
// config shows what is trusted.
func TestTagTrustedByRegistriesD(t *testing.T) {
	reg := startRegistry(t, registryOpts{})
	digest := reg.push("team/greet:v1", greetImage(t))
	reg.push("teammate/greet:v1", greetImage(t))
	e := newEnv(t)
	policy := filepath.Join(e.local, "registries.d", "team.json")
	writeJSON(t, policy, map[string]any{
		"nscnKind": "registryTrust", "nscnVersion": "v1",
		"repositories": []string{reg.host + "/team"}, "acceptTags": true,
	})
	if r := e.ok(runArgs(t, "http", reg.ref("team/greet:v1"))...); !slices.Contains(lines(r.stdout), greetOutput) {
		t.Fatalf("want %q:\n%s", greetOutput, r)
	}
	if list := e.ok("image", "list", "--format=json").stdout; !strings.Contains(list, digest) {
		t.Fatalf("the trusted tag's image is not listed with its digest %s:\n%s", digest, list)
	}
	e.refused(fetchArgs("http", reg.ref("teammate/greet:v1")), "not pinned by digest")

	cfg := e.ok("config").stdout
	if !strings.Contains(cfg, `"registryTrust"`) || !strings.Contains(cfg, reg.host+"/team") || !strings.Contains(cfg, policy) {
		t.Fatalf("nscn config does not show the trust entry:\n%s", cfg)
	}

	// A broken file: the whole policy is ignored (tags refused again,
	// with a warning naming the file), and nscn config fails naming it.
	writeFile(t, policy, []byte(`{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["*"],"acceptTags":true}`))
	e2 := newEnv(t)
	e2.local = e.local
	r := e2.refused(fetchArgs("http", reg.ref("team/greet:v1")), "not pinned by digest")
	if !strings.Contains(r.stderr, "team.json") {
		t.Fatalf("the warning does not name the broken file:\n%s", r)
	}
	e.refused([]string{"config"}, "team.json")
}
