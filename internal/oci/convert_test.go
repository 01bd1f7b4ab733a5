package oci

import (
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nosecone/nscn/internal/aci"
)

func TestConvert(t *testing.T) {
	cfg := &v1.ConfigFile{
		OS: "linux", Architecture: "arm64",
		Config: v1.Config{
			Entrypoint:   []string{"/docker-entrypoint.sh"},
			Cmd:          []string{"nginx", "-g", "daemon off;"},
			Env:          []string{"PATH=/usr/sbin:/usr/bin", "BAD NAME=x", "EMPTY="},
			User:         "www:web",
			WorkingDir:   "srv",
			ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8000-8002": {}},
			Volumes:      map[string]struct{}{"/var/cache/nginx": {}, "/": {}},
			Labels:       map[string]string{"org.opencontainers.image.source": "https://example.com", "Maintainer": "me", "created": "yesterday"},
		},
	}
	m, dropped, err := Convert(cfg, App{Name: ImageName("127.0.0.1:5000/team/Nginx"), Version: "1.25", Reference: "docker://127.0.0.1:5000/team/nginx:1.25", Digest: v1.Hash{Algorithm: "sha256", Hex: testHex}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aci.ParseManifest(b); err != nil {
		t.Fatalf("the manifest does not pass appc's checks: %v", err)
	}
	checks := []struct {
		name      string
		got, want string
	}{
		{name: "name", got: m.Name.String(), want: "127.0.0.1-5000/team/nginx"},
		{name: "exec", got: strings.Join(m.App.Exec, "|"), want: "/docker-entrypoint.sh|nginx|-g|daemon off;"},
		{name: "user", got: m.App.User + ":" + m.App.Group, want: "www:web"},
		{name: "working dir", got: m.App.WorkingDirectory, want: "/srv"},
		{name: "dropped", got: strings.Join(dropped, ","), want: `environment variable "BAD NAME=x"`},
		{name: "ports", got: portNames(m.App.Ports), want: "53-udp,80-tcp,8000-tcp*3"},
		{name: "mount points", got: mountNames(m.App.MountPoints), want: "volume-var-cache-nginx=/var/cache/nginx"},
		{name: "arch", got: label(m, "arch") + "/" + label(m, "os") + "/" + label(m, "version"), want: "aarch64/linux/1.25"},
		{name: "entrypoint", got: anno(m, AnnotationEntrypoint), want: `["/docker-entrypoint.sh"]`},
		{name: "cmd", got: anno(m, AnnotationCmd), want: `["nginx","-g","daemon off;"]`},
		{name: "digest", got: anno(m, AnnotationDigest), want: "sha256:" + testHex},
		{name: "label", got: anno(m, "org.opencontainers.image.source") + "," + anno(m, "maintainer"), want: "https://example.com,me"},
		{name: "reserved label dropped", got: anno(m, "created"), want: ""},
		{name: "env", got: env(m), want: "PATH=/usr/sbin:/usr/bin,EMPTY="},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %q, want %q", c.got, c.want)
			}
		})
	}
}

func TestConvertUser(t *testing.T) {
	tests := []struct {
		name, user, wantUser, wantGroup string
		fromPasswd                      bool
	}{
		{name: "none", user: "", wantUser: "0", wantGroup: "0"},
		{name: "name", user: "nginx", wantUser: "nginx", wantGroup: "0", fromPasswd: true},
		{name: "uid", user: "1000", wantUser: "1000", wantGroup: "0", fromPasswd: true},
		{name: "uid and gid", user: "1000:1000", wantUser: "1000", wantGroup: "1000"},
		{name: "group only", user: ":staff", wantUser: "0", wantGroup: "staff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, err := Convert(&v1.ConfigFile{Architecture: "amd64", Config: v1.Config{User: tt.user}}, App{Name: "x"})
			if err != nil {
				t.Fatal(err)
			}
			_, fp := m.Annotations.Get(AnnotationPrimaryGroup)
			if m.App.User != tt.wantUser || m.App.Group != tt.wantGroup || fp != tt.fromPasswd {
				t.Errorf("got %s:%s from passwd %v, want %s:%s %v", m.App.User, m.App.Group, fp, tt.wantUser, tt.wantGroup, tt.fromPasswd)
			}
		})
	}
}

func TestConvertRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  v1.ConfigFile
	}{
		{name: "unknown arch", cfg: v1.ConfigFile{Architecture: "vax"}},
		{name: "bad port", cfg: v1.ConfigFile{Architecture: "amd64", Config: v1.Config{ExposedPorts: map[string]struct{}{"http/tcp": {}}}}},
		{name: "bad protocol", cfg: v1.ConfigFile{Architecture: "amd64", Config: v1.Config{ExposedPorts: map[string]struct{}{"80/icmp": {}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Convert(&tt.cfg, App{Name: "x"}); err == nil {
				t.Fatal("Convert accepted it")
			}
		})
	}
}

func TestImageName(t *testing.T) {
	for in, want := range map[string]string{
		"index.docker.io/library/busybox": "index.docker.io/library/busybox",
		"127.0.0.1:5000/a":                "127.0.0.1-5000/a",
		"[::1]:5000/a":                    "1-5000/a",
		"Quay.IO/x__y":                    "quay.io/x_y",
	} {
		if got := ImageName(in); got != want {
			t.Errorf("ImageName(%q) = %q, want %q", in, got, want)
		}
	}
}
