//go:build functional

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/pgp/pgptest"
)

// signedImage copies a built image into a temp dir and signs it with a new
// gpg key; it returns the image path and the armored public key file.
func signedImage(t *testing.T, gpg *pgptest.GPG, image, algo string) (aci, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(imagesDir(t), image)) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	aci = filepath.Join(dir, image)
	if err := os.WriteFile(aci, data, 0o644); err != nil { //nolint:gosec // G703: a file the test made
		t.Fatal(err)
	}
	fpr, pub := gpg.GenKey(t, "Image Signer "+algo+" <signer-"+algo+"@example.com>", algo)
	gpg.Sign(t, fpr, aci)
	keyFile = filepath.Join(dir, "key.asc")
	if err := os.WriteFile(keyFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return aci, keyFile
}

func newGPG(t *testing.T) *pgptest.GPG { return pgptest.NewGPG(t) }

func TestSignedFetchWithTrustedKeys(t *testing.T) {
	gpg := pgptest.NewGPG(t)
	tests := []struct {
		name  string
		algo  string
		trust []string // nscn trust arguments, before the key file
	}{
		{name: "rsa prefix key", algo: pgptest.RSA2048, trust: []string{"--prefix", "nosecone.dev/busybox"}},
		{name: "ed25519 parent prefix key", algo: pgptest.Ed25519, trust: []string{"--prefix", "nosecone.dev"}},
		{name: "root key", algo: pgptest.Ed25519, trust: []string{"--root"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			aci, key := signedImage(t, gpg, "busybox.aci", tt.algo)
			// Untrusted first: refused before the image is read (so the
			// message cannot name it), store untouched.
			before := e.snapshot()
			e.fails("no keys are trusted", "fetch", aci)
			if e.snapshot() != before {
				t.Fatal("refused fetch changed the store")
			}
			// Declining the review trusts nothing.
			r := e.runIn([]byte("no\n"), append(append([]string{"trust"}, tt.trust...), key)...)
			if r.code == 0 {
				t.Fatalf("trust answered no succeeded: %s", r.stderr)
			}
			e.fails("no keys are trusted", "fetch", aci)
			r = e.runIn([]byte("yes\n"), append(append([]string{"trust"}, tt.trust...), key)...)
			if r.code != 0 {
				t.Fatalf("trust: %s", r.stderr)
			}
			r = e.ok("fetch", aci)
			if got := strings.TrimSpace(r.stdout); got != imageKey(t, aci) {
				t.Fatalf("fetch printed %q", got)
			}
		})
	}
}

func TestSignatureRejections(t *testing.T) {
	gpg := pgptest.NewGPG(t)
	e := newEnv(t)
	aci, key := signedImage(t, gpg, "busybox.aci", pgptest.Ed25519)
	e.ok("trust", "--skip-fingerprint-review", "--prefix", "nosecone.dev/busybox", key)

	// A key for a sibling prefix does not cover the image.
	other, otherKey := signedImage(t, gpg, "hello.aci", pgptest.RSA2048)
	e.ok("trust", "--skip-fingerprint-review", "--prefix", "nosecone.dev/hellox", otherKey)
	e.fails("nosecone.dev/hello", "fetch", other)

	// Tampered image: the same content recompressed, so the file differs
	// from what was signed while still being a valid image of that name.
	tampered := filepath.Join(t.TempDir(), "busybox.aci")
	if err := os.Rename(recompress(t, aci, "gzip", "-1", "-c"), tampered); err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(aci + ".asc") //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered+".asc", sig, 0o644); err != nil { //nolint:gosec // G703: a file the test made
		t.Fatal(err)
	}
	before := e.snapshot()
	e.fails("", "fetch", tampered)
	// Signed by someone else: the other key's signature over this image.
	e.fails("", "fetch", "--signature", other+".asc", aci)
	if e.snapshot() != before {
		t.Fatal("rejected fetches changed the store")
	}
	// The good one still goes in; --insecure-options=image skips the check.
	e.ok("fetch", aci)
	e.ok("--insecure-options=image", "fetch", other)

	list := e.ok("trust", "--list").stdout
	if !strings.Contains(list, "nosecone.dev/busybox") {
		t.Fatalf("trust --list: %s", list)
	}
}
