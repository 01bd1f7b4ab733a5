// Package pgptest drives a real GnuPG in a throw-away home directory, so
// that tests check keys and signatures made by the tool users sign images
// with rather than ones made by the library that verifies them.
//
// It is imported only from tests (in-package and end-to-end). It needs gpg
// and gpgconf on PATH, not root; without them the test is skipped, or fails
// when CI=true (see testutil.RequiresCommand).
package pgptest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"
)

// Algorithms accepted by GenKey, as gpg --quick-gen-key names them.
const (
	RSA2048 = "rsa2048"
	Ed25519 = "ed25519"
)

// GPG is a GnuPG home directory with no passphrases. Its agent is killed
// and its directory removed when the test ends.
type GPG struct {
	// Home is the GNUPGHOME. It lives directly under /tmp because the
	// agent's socket path must stay short.
	Home string
}

// NewGPG creates an empty GnuPG home for t.
func NewGPG(t testing.TB) *GPG {
	t.Helper()
	testutil.RequiresCommand(t, "gpg")
	testutil.RequiresCommand(t, "gpgconf")
	// Not t.TempDir: its paths are too long for the agent socket.
	home, err := os.MkdirTemp("/tmp", "gpg") //nolint:usetesting // see above: the agent socket path
	if err != nil {
		t.Fatalf("create gpg home: %v", err)
	}
	if err := os.Chmod(home, 0o700); err != nil { //nolint:gosec // G302: a directory, which needs x to be searched
		t.Fatalf("create gpg home: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "gpgconf", "--homedir", home, "--kill", "all").CombinedOutput(); err != nil { //nolint:gosec // G204: gpg, with the test's arguments
			t.Logf("kill gpg agent of %s: %v: %s", home, err, out)
		}
		if err := os.RemoveAll(home); err != nil {
			t.Errorf("remove gpg home: %v", err)
		}
	})
	return &GPG{Home: home}
}

// Run runs gpg in batch mode in this home with the given arguments and
// returns its stdout; the test fails if gpg does.
func (g *GPG) Run(t testing.TB, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{
		"--homedir", g.Home, "--batch", "--no-tty", "--yes",
		"--pinentry-mode", "loopback", "--passphrase", "",
	}, args...)
	cmd := exec.CommandContext(ctx, "gpg", full...) //nolint:gosec // G204: gpg, with the test's arguments
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.Home, "LC_ALL=C")
	if err := cmd.Run(); err != nil {
		t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// GenKey creates a signing-only key with user ID uid and algorithm algo
// (RSA2048, Ed25519, or anything gpg --quick-gen-key takes) that never
// expires. It returns the lowercase hex fingerprint and the armored public
// key.
func (g *GPG) GenKey(t testing.TB, uid, algo string) (fingerprint string, armoredPub []byte) {
	t.Helper()
	return g.GenKeyExpiring(t, uid, algo, "never")
}

// GenKeyExpiring is GenKey with a gpg expiry such as "never", "1y" or
// "seconds=2".
func (g *GPG) GenKeyExpiring(t testing.TB, uid, algo, expire string) (fingerprint string, armoredPub []byte) {
	t.Helper()
	out := g.Run(t, "--status-fd", "1", "--quick-gen-key", uid, algo, "sign", expire)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// [GNUPG:] KEY_CREATED P <fingerprint>
		f := strings.Fields(sc.Text())
		if len(f) >= 4 && f[0] == "[GNUPG:]" && f[1] == "KEY_CREATED" {
			fingerprint = strings.ToLower(f[3])
		}
	}
	if fingerprint == "" {
		t.Fatalf("gpg --quick-gen-key %q: no KEY_CREATED status in %q", uid, out)
	}
	return fingerprint, g.Export(t, fingerprint)
}

// AddSigningSubkey adds a signing subkey of algorithm algo to the key fpr
// and returns the subkey's lowercase hex fingerprint; Sign with it to sign
// with the subkey. Export the primary key again to get the subkey with it.
func (g *GPG) AddSigningSubkey(t testing.TB, fpr, algo string) (subFingerprint string) {
	t.Helper()
	g.Run(t, "--quick-add-key", fpr, algo, "sign", "never")
	out := g.Run(t, "--with-colons", "--with-subkey-fingerprints", "--list-keys", fpr)
	// Colon listing: an "fpr" record follows each "pub" or "sub" record;
	// the newest subkey is last.
	var inSub bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		switch {
		case f[0] == "sub":
			inSub = true
		case f[0] == "pub":
			inSub = false
		case f[0] == "fpr" && inSub && len(f) > 9:
			subFingerprint = strings.ToLower(f[9])
		}
	}
	if subFingerprint == "" {
		t.Fatalf("gpg --quick-add-key %s: no subkey in %q", fpr, out)
	}
	return subFingerprint
}

// Export returns the armored public key of fpr as gpg exports it now
// (with its revocation, once revoked).
func (g *GPG) Export(t testing.TB, fpr string) []byte {
	t.Helper()
	pub := g.Run(t, "--armor", "--export", fpr)
	if len(pub) == 0 {
		t.Fatalf("gpg --export %s: nothing exported", fpr)
	}
	return pub
}

// ExportSecret returns the armored secret key of fpr, for tests that check
// that private keys are refused.
func (g *GPG) ExportSecret(t testing.TB, fpr string) []byte {
	t.Helper()
	return g.Run(t, "--armor", "--export-secret-keys", fpr)
}

// Sign makes an armored detached signature of file with the key fpr, as
// appc image signatures are, and returns its path, file + ".asc".
func (g *GPG) Sign(t testing.TB, fpr string, file string) (ascPath string) {
	t.Helper()
	ascPath = file + ".asc"
	g.Run(t, "--local-user", fpr+"!", "--armor", "--output", ascPath, "--detach-sign", file)
	return ascPath
}

// SignBinary makes a binary detached signature of file with the key fpr
// and returns its path, file + ".sig".
func (g *GPG) SignBinary(t testing.TB, fpr string, file string) (sigPath string) {
	t.Helper()
	sigPath = file + ".sig"
	g.Run(t, "--local-user", fpr+"!", "--output", sigPath, "--detach-sign", file)
	return sigPath
}

// Revoke revokes the key fpr with the revocation certificate gpg made when
// it created the key, and returns the armored public key with the
// revocation.
func (g *GPG) Revoke(t testing.TB, fpr string) []byte {
	t.Helper()
	rev, err := os.ReadFile(filepath.Join(g.Home, "openpgp-revocs.d", strings.ToUpper(fpr)+".rev"))
	if err != nil {
		t.Fatalf("read revocation certificate: %v", err)
	}
	// gpg guards the stored certificate with a leading colon on the armor
	// header so it is not imported by accident.
	rev = bytes.Replace(rev, []byte(":-----BEGIN PGP PUBLIC KEY BLOCK-----"), []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----"), 1)
	p := filepath.Join(g.Home, strings.ToLower(fpr)+".rev")
	if err := os.WriteFile(p, rev, 0o600); err != nil { //nolint:gosec // G703: a file in the test's gpg home
		t.Fatalf("write revocation certificate: %v", err)
	}
	g.Run(t, "--import", p)
	return g.Export(t, fpr)
}

// WriteFile writes data to a new file named name in dir and returns its
// path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}
