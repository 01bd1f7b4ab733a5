//go:build !nscn_nofetch

package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pgp"
	"github.com/nosecone/nscn/internal/pgp/pgptest"
)

// trustFixture holds gpg keys shared by the trust command tests.
type trustFixture struct {
	gpg                 *pgptest.GPG
	dir                 string
	rsaFpr, edFpr       string
	rsaPub, edPub       []byte
	rsaFile, edFile     string // armored public keys
	secretFile          string
	payload, rsaSig     string // a file and its signature by the RSA key
	rsaUID, edUID       string
	rsaPretty, edPretty string
}

func newTrustFixture(t *testing.T) *trustFixture {
	t.Helper()
	g := pgptest.NewGPG(t)
	f := &trustFixture{gpg: g, dir: t.TempDir(), rsaUID: "Test RSA <rsa@example.com>", edUID: "Test Ed25519 <ed@example.com>"}
	f.rsaFpr, f.rsaPub = g.GenKey(t, f.rsaUID, pgptest.RSA2048)
	f.edFpr, f.edPub = g.GenKey(t, f.edUID, pgptest.Ed25519)
	f.rsaPretty, f.edPretty = pgp.FormatFingerprint(f.rsaFpr), pgp.FormatFingerprint(f.edFpr)
	f.rsaFile = pgptest.WriteFile(t, f.dir, "rsa.asc", f.rsaPub)
	f.edFile = pgptest.WriteFile(t, f.dir, "ed.asc", f.edPub)
	f.secretFile = pgptest.WriteFile(t, f.dir, "secret.asc", g.ExportSecret(t, f.rsaFpr))
	f.payload = pgptest.WriteFile(t, f.dir, "app.aci", []byte("an image\n"))
	f.rsaSig = g.Sign(t, f.rsaFpr, f.payload)
	return f
}

// trustConfig is a pair of config directories for one test.
type trustConfig struct{ local, system string }

func newTrustConfig(t *testing.T) trustConfig {
	t.Helper()
	return trustConfig{local: filepath.Join(t.TempDir(), "etc"), system: filepath.Join(t.TempDir(), "lib")}
}

// run runs nscn in-process with the config dirs, stdin and args. The tests
// that call it do not run in parallel: urfave/cli writes its global help flag
// on every run.
func (c trustConfig) run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"nscn", "--local-config", c.local, "--system-config", c.system}, args...)
	err = NewApp(strings.NewReader(stdin), &out, &errb).RunContext(t.Context(), full)
	return out.String(), errb.String(), err
}

func (c trustConfig) keystore() *pgp.Keystore {
	return &pgp.Keystore{LocalDir: c.local, SystemDir: c.system}
}

func TestTrustAdd(t *testing.T) {
	f := newTrustFixture(t)
	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantErr    error
		wantMsg    string   // in the error
		wantPaths  []string // relative to the local config dir, one per stdout line
		wantPrompt bool
		wantStderr []string
	}{
		{
			name:       "answer yes",
			stdin:      "yes\n",
			args:       []string{"--prefix", "example.com/app", f.rsaFile},
			wantPaths:  []string{"trustedkeys/prefix.d/example.com/app/" + f.rsaFpr},
			wantPrompt: true,
			wantStderr: []string{f.rsaPretty, f.rsaUID, `prefix "example.com/app"`},
		},
		{
			name:       "answer y",
			stdin:      "Y\n",
			args:       []string{"--prefix", "example.com/app", f.edFile},
			wantPaths:  []string{"trustedkeys/prefix.d/example.com/app/" + f.edFpr},
			wantPrompt: true,
		},
		{
			name:       "answer yes without newline",
			stdin:      "yes",
			args:       []string{"--prefix", "example.com/app", f.edFile},
			wantPaths:  []string{"trustedkeys/prefix.d/example.com/app/" + f.edFpr},
			wantPrompt: true,
		},
		{
			name:       "answer no",
			stdin:      "no\n",
			args:       []string{"--prefix", "example.com/app", f.rsaFile},
			wantErr:    errdefs.ErrFailedPrecondition,
			wantMsg:    "not trusted",
			wantPrompt: true,
		},
		{
			name:       "empty answer",
			stdin:      "\n",
			args:       []string{"--prefix", "example.com/app", f.rsaFile},
			wantErr:    errdefs.ErrFailedPrecondition,
			wantPrompt: true,
		},
		{
			name:       "no stdin",
			stdin:      "",
			args:       []string{"--prefix", "example.com/app", f.rsaFile},
			wantErr:    errdefs.ErrFailedPrecondition,
			wantMsg:    "--skip-fingerprint-review",
			wantPrompt: true,
		},
		{
			name:      "skip review",
			args:      []string{"--prefix", "example.com/app", "--skip-fingerprint-review", f.rsaFile},
			wantPaths: []string{"trustedkeys/prefix.d/example.com/app/" + f.rsaFpr},
		},
		{
			name:       "root key",
			stdin:      "yes\n",
			args:       []string{"--root", f.edFile},
			wantPaths:  []string{"trustedkeys/root.d/" + f.edFpr},
			wantPrompt: true,
			wantStderr: []string{"ROOT", "EVERY image"},
		},
		{
			name:       "two keys, both accepted",
			stdin:      "yes\nyes\n",
			args:       []string{"--prefix", "example.com", f.rsaFile, f.edFile},
			wantPaths:  []string{"trustedkeys/prefix.d/example.com/" + f.rsaFpr, "trustedkeys/prefix.d/example.com/" + f.edFpr},
			wantPrompt: true,
		},
		{
			name:       "two keys, second refused: nothing stored",
			stdin:      "yes\nno\n",
			args:       []string{"--prefix", "example.com", f.rsaFile, f.edFile},
			wantErr:    errdefs.ErrFailedPrecondition,
			wantPrompt: true,
		},
		{
			name:      "file URL",
			args:      []string{"--prefix", "example.com/app", "--skip-fingerprint-review", "file://" + f.rsaFile},
			wantPaths: []string{"trustedkeys/prefix.d/example.com/app/" + f.rsaFpr},
		},
		{
			name:    "neither prefix nor root",
			stdin:   "yes\n",
			args:    []string{f.rsaFile},
			wantErr: errdefs.ErrInvalidArgument,
			wantMsg: "--prefix",
		},
		{
			name:    "prefix and root",
			stdin:   "yes\n",
			args:    []string{"--prefix", "example.com", "--root", f.rsaFile},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "no key argument for a root key",
			args:    []string{"--root"},
			wantErr: errdefs.ErrInvalidArgument,
			wantMsg: "a key file or URL is required with --root",
		},
		{
			name:    "invalid prefix",
			args:    []string{"--prefix", "../../etc", f.rsaFile},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "missing key file",
			args:    []string{"--prefix", "example.com", filepath.Join(f.dir, "nope.asc")},
			wantErr: errdefs.ErrNotFound,
		},
		{
			name:    "private key",
			stdin:   "yes\n",
			args:    []string{"--prefix", "example.com", f.secretFile},
			wantErr: errdefs.ErrInvalidArgument,
			wantMsg: "private key",
		},
		{
			name:    "unsupported scheme",
			args:    []string{"--prefix", "example.com", "ftp://example.com/key.asc"},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "format without list",
			args:    []string{"--prefix", "example.com", "--format", "json", f.rsaFile},
			wantErr: errdefs.ErrInvalidArgument,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newTrustConfig(t)
			stdout, stderr, err := cfg.run(t, tc.stdin, append([]string{"trust"}, tc.args...)...)
			if got := strings.Contains(stderr, "Are you sure you want to trust this key (yes/no)?"); got != tc.wantPrompt {
				t.Errorf("prompt shown = %v, want %v; stderr:\n%s", got, tc.wantPrompt, stderr)
			}
			for _, s := range tc.wantStderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, stderr)
				}
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("trust error = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %q does not contain %q", err, tc.wantMsg)
				}
				if stdout != "" {
					t.Errorf("stdout = %q, want nothing", stdout)
				}
				if _, err := os.Stat(filepath.Join(cfg.local, "trustedkeys")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("refused trust wrote to the keystore: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("trust error = %v\nstderr:\n%s", err, stderr)
			}
			var want []string
			for _, p := range tc.wantPaths {
				want = append(want, filepath.Join(cfg.local, p))
			}
			if got := strings.Fields(stdout); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("stdout = %q, want the paths %q", stdout, want)
			}
			for _, p := range want {
				if _, _, err := pgp.KeyInfo(readTrustFile(t, p)); err != nil {
					t.Errorf("stored key %s: %v", p, err)
				}
			}
		})
	}
}

func readTrustFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTrustThenVerify trusts a key through the command and checks that the
// keystore then accepts a gpg signature by it for the prefix only.
func TestTrustThenVerify(t *testing.T) {
	f := newTrustFixture(t)
	cfg := newTrustConfig(t)
	if _, stderr, err := cfg.run(t, "yes\n", "trust", "--prefix", "example.com/app", f.rsaFile); err != nil {
		t.Fatalf("trust: %v\n%s", err, stderr)
	}
	tests := []struct {
		name    string
		image   string
		wantErr error
	}{
		{name: "the prefix", image: "example.com/app"},
		{name: "below the prefix", image: "example.com/app/db"},
		{name: "a sibling", image: "example.com/apple", wantErr: errdefs.ErrFailedPrecondition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cfg.keystore().CheckSignature(t.Context(), tc.image,
				bytes.NewReader(readTrustFile(t, f.payload)), bytes.NewReader(readTrustFile(t, f.rsaSig)))
			if !errors.Is(err, tc.wantErr) && (tc.wantErr != nil || err != nil) {
				t.Errorf("CheckSignature(%s) = %v, want %v", tc.image, err, tc.wantErr)
			}
		})
	}
}

func TestTrustURL(t *testing.T) {
	f := newTrustFixture(t)
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/key.asc", func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/pgp-keys")
		_, _ = w.Write(f.rsaPub)
	})
	plain := httptest.NewServer(mux)
	t.Cleanup(plain.Close)
	mux.HandleFunc("/to-http", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, plain.URL+"/key.asc", http.StatusFound)
	})
	secure := httptest.NewTLSServer(mux)
	t.Cleanup(secure.Close)

	stored := "trustedkeys/prefix.d/example.com/app/" + f.rsaFpr
	tests := []struct {
		name     string
		global   []string
		args     []string
		wantErr  error
		wantMsg  string
		wantHits int32 // requests the servers saw
	}{
		{name: "https with tls check skipped", global: []string{"--insecure-options=tls"}, args: []string{secure.URL + "/key.asc"}, wantHits: 1},
		{name: "https with an untrusted certificate", args: []string{secure.URL + "/key.asc"}, wantErr: errdefs.ErrPermissionDenied, wantMsg: "--insecure-options=tls"},
		{name: "https not found", global: []string{"--insecure-options=tls"}, args: []string{secure.URL + "/missing.asc"}, wantErr: errdefs.ErrNotFound},
		{name: "http refused", args: []string{plain.URL + "/key.asc"}, wantErr: errdefs.ErrPermissionDenied, wantMsg: "--insecure-allow-http", wantHits: 0},
		{name: "http refused even with tls skipped", global: []string{"--insecure-options=tls"}, args: []string{plain.URL + "/key.asc"}, wantErr: errdefs.ErrPermissionDenied},
		{name: "http with --insecure-allow-http", args: []string{"--insecure-allow-http", plain.URL + "/key.asc"}, wantHits: 1},
		{name: "http with --insecure-options=pubkey", global: []string{"--insecure-options=pubkey"}, args: []string{plain.URL + "/key.asc"}, wantHits: 1},
		{name: "redirect from https to http refused", global: []string{"--insecure-options=tls"}, args: []string{secure.URL + "/to-http"}, wantErr: errdefs.ErrPermissionDenied, wantHits: 1},
		{name: "redirect from https to http allowed", global: []string{"--insecure-options=tls"}, args: []string{"--insecure-allow-http", secure.URL + "/to-http"}, wantHits: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hits.Store(0)
			cfg := newTrustConfig(t)
			args := append(append(append([]string{}, tc.global...), "trust", "--prefix", "example.com/app", "--skip-fingerprint-review"), tc.args...)
			stdout, stderr, err := cfg.run(t, "", args...)
			if got := hits.Load(); got != tc.wantHits {
				t.Errorf("server requests = %d, want %d", got, tc.wantHits)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("trust error = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %q does not contain %q", err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("trust error = %v\nstderr:\n%s", err, stderr)
			}
			if want := filepath.Join(cfg.local, stored) + "\n"; stdout != want {
				t.Errorf("stdout = %q, want %q", stdout, want)
			}
		})
	}
}

func TestTrustListAndRemove(t *testing.T) {
	f := newTrustFixture(t)
	cfg := newTrustConfig(t)
	if _, stderr, err := cfg.run(t, "", "trust", "--skip-fingerprint-review", "--prefix", "example.com/app", f.rsaFile); err != nil {
		t.Fatalf("trust: %v\n%s", err, stderr)
	}
	// A distribution ships the ed25519 key as a root key.
	sysRoot := filepath.Join(cfg.system, "trustedkeys", "root.d")
	if err := os.MkdirAll(sysRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	pgptest.WriteFile(t, sysRoot, f.edFpr, f.edPub)

	t.Run("list table", func(t *testing.T) {
		stdout, _, err := cfg.run(t, "", "trust", "--list")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(lines) != 3 {
			t.Fatalf("want a header and 2 keys, got:\n%s", stdout)
		}
		for i, want := range [][]string{
			{"PREFIX", "FINGERPRINT", "USER ID", "SOURCE"},
			{"(root)", f.edFpr, f.edUID, "system"},
			{"example.com/app", f.rsaFpr, f.rsaUID, "local"},
		} {
			for _, w := range want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d %q does not contain %q", i, lines[i], w)
				}
			}
		}
	})

	t.Run("list json", func(t *testing.T) {
		stdout, _, err := cfg.run(t, "", "trust", "--list", "--format=json")
		if err != nil {
			t.Fatal(err)
		}
		var got []trustedKeyJSON
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("parse %q: %v", stdout, err)
		}
		if len(got) != 2 || !got[0].Root || got[0].Fingerprint != f.edFpr || got[0].Source != "system" ||
			got[1].Prefix != "example.com/app" || got[1].Fingerprint != f.rsaFpr || got[1].Source != "local" ||
			len(got[1].UserIDs) != 1 || got[1].UserIDs[0] != f.rsaUID {
			t.Errorf("list = %+v", got)
		}
	})

	usage := []struct {
		name string
		args []string
	}{
		{name: "list with prefix", args: []string{"--list", "--prefix", "example.com"}},
		{name: "list with argument", args: []string{"--list", f.rsaFile}},
		{name: "list bad format", args: []string{"--list", "--format", "yaml"}},
		{name: "remove with argument", args: []string{"--remove", f.rsaFpr, f.rsaFile}},
		{name: "remove with prefix and root", args: []string{"--remove", f.rsaFpr, "--prefix", "example.com/app", "--root"}},
		{name: "remove bad fingerprint", args: []string{"--remove", "abcd", "--prefix", "example.com/app"}},
	}
	for _, tc := range usage {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := cfg.run(t, "", append([]string{"trust"}, tc.args...)...); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error = %v, want invalid argument", err)
			}
		})
	}

	t.Run("remove wrong prefix", func(t *testing.T) {
		if _, _, err := cfg.run(t, "", "trust", "--remove", f.rsaFpr, "--prefix", "example.com"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("error = %v, want not found", err)
		}
	})

	t.Run("remove local key", func(t *testing.T) {
		stdout, stderr, err := cfg.run(t, "", "trust", "--remove", f.rsaPretty, "--prefix", "example.com/app")
		if err != nil {
			t.Fatalf("remove: %v\n%s", err, stderr)
		}
		if stdout != "" || !strings.Contains(stderr, "no longer trusted") {
			t.Errorf("stdout %q, stderr %q", stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(cfg.local, "trustedkeys", "prefix.d", "example.com", "app", f.rsaFpr)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("key file still there: %v", err)
		}
		if _, _, err := cfg.run(t, "", "trust", "--remove", f.rsaFpr, "--prefix", "example.com/app"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("second remove error = %v, want not found", err)
		}
	})

	t.Run("remove system root key masks it", func(t *testing.T) {
		if _, stderr, err := cfg.run(t, "", "trust", "--remove", f.edFpr, "--root"); err != nil {
			t.Fatalf("remove: %v\n%s", err, stderr)
		}
		mask := filepath.Join(cfg.local, "trustedkeys", "root.d", f.edFpr)
		if fi, err := os.Stat(mask); err != nil || fi.Size() != 0 {
			t.Fatalf("want an empty mask at %s: %v", mask, err)
		}
		if _, err := os.Stat(filepath.Join(sysRoot, f.edFpr)); err != nil {
			t.Errorf("system key touched: %v", err)
		}
		stdout, _, err := cfg.run(t, "", "trust", "--list")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout, "system (masked)") {
			t.Errorf("list does not show the mask:\n%s", stdout)
		}
	})
}

func TestTrustHelp(t *testing.T) {
	cfg := newTrustConfig(t)
	stdout, _, err := cfg.run(t, "", "trust", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--prefix", "--root", "--skip-fingerprint-review", "--insecure-allow-http", "--list", "--remove", "example.com/apple", "--trust-keys-from-https"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help does not mention %q", want)
		}
	}
}
