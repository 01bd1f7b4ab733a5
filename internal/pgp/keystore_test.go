package pgp

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pgp/pgptest"
)

// fixture holds keys and signatures made once by a real gpg for all the
// tests of the package.
type fixture struct {
	gpg *pgptest.GPG
	dir string // where payload and signatures are

	rsa, ed, other, revoked, expiring signer
	subkey                            signer // pub is the primary key, signatures are by its signing subkey

	payload string // the signed file
}

type signer struct {
	fpr    string
	pub    []byte
	sig    string // armored detached signature of payload
	binSig string // binary detached signature of payload
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	g := pgptest.NewGPG(t)
	f := &fixture{gpg: g, dir: t.TempDir()}
	f.payload = pgptest.WriteFile(t, f.dir, "image.aci", []byte("pretend this is an image\n"))
	gen := func(name, uid, algo, expire string) signer {
		fpr, pub := g.GenKeyExpiring(t, uid, algo, expire)
		in := pgptest.WriteFile(t, f.dir, name, mustRead(t, f.payload))
		return signer{fpr: fpr, pub: pub, sig: g.Sign(t, fpr, in), binSig: g.SignBinary(t, fpr, in)}
	}
	f.rsa = gen("rsa.aci", "Test RSA <rsa@example.com>", pgptest.RSA2048, "never")
	f.ed = gen("ed.aci", "Test Ed25519 <ed@example.com>", pgptest.Ed25519, "never")
	f.other = gen("other.aci", "Someone Else <else@example.org>", pgptest.Ed25519, "never")
	f.revoked = gen("revoked.aci", "Revoked <revoked@example.com>", pgptest.Ed25519, "never")
	f.revoked.pub = g.Revoke(t, f.revoked.fpr)
	f.expiring = gen("expiring.aci", "Expiring <expiring@example.com>", pgptest.Ed25519, "1d")

	primary, _ := g.GenKey(t, "Subkey Signer <subkey@example.com>", pgptest.Ed25519)
	sub := g.AddSigningSubkey(t, primary, pgptest.Ed25519)
	in := pgptest.WriteFile(t, f.dir, "subkey.aci", mustRead(t, f.payload))
	f.subkey = signer{fpr: primary, pub: g.Export(t, primary), sig: g.Sign(t, sub, in), binSig: g.SignBinary(t, sub, in)}
	return f
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// placed is a key file to put in a keystore before a test.
type placed struct {
	system bool   // in SystemDir rather than LocalDir
	prefix string // "" for root.d
	fpr    string
	data   []byte // nil for an empty (mask) file
}

// newKeystore makes a keystore in temp dirs holding files.
func newKeystore(t *testing.T, files ...placed) *Keystore {
	t.Helper()
	ks := &Keystore{LocalDir: filepath.Join(t.TempDir(), "etc"), SystemDir: filepath.Join(t.TempDir(), "usr-lib")}
	for _, p := range files {
		cfg := ks.LocalDir
		if p.system {
			cfg = ks.SystemDir
		}
		dir := placeDir(cfg, p.prefix)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		pgptest.WriteFile(t, dir, p.fpr, p.data)
	}
	return ks
}

func TestCheckSignature(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tampered := pgptest.WriteFile(t, f.dir, "tampered.aci", []byte("pretend this is an image, changed\n"))
	garbage := pgptest.WriteFile(t, f.dir, "garbage.asc", []byte("this is not a signature"))
	pubAsSig := pgptest.WriteFile(t, f.dir, "pub.asc", f.rsa.pub)

	tests := []struct {
		name      string
		files     []placed
		image     string
		payload   string // default f.payload
		sig       string
		now       time.Duration // offset of the keystore clock
		wantErr   error
		wantMsg   []string
		wantFpr   string
		cancelled bool
	}{
		{
			name:    "good rsa signature",
			files:   []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			image:   "example.com/app",
			sig:     f.rsa.sig,
			wantFpr: f.rsa.fpr,
		},
		{
			name:    "good ed25519 signature",
			files:   []placed{{prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub}},
			image:   "example.com/app",
			sig:     f.ed.sig,
			wantFpr: f.ed.fpr,
		},
		{
			name:    "binary signature",
			files:   []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			image:   "example.com/app",
			sig:     f.rsa.binSig,
			wantFpr: f.rsa.fpr,
		},
		{
			name: "one of several trusted keys signed",
			files: []placed{
				{prefix: "example.com", fpr: f.rsa.fpr, data: f.rsa.pub},
				{prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub},
			},
			image:   "example.com/app",
			sig:     f.rsa.sig,
			wantFpr: f.rsa.fpr,
		},
		{
			name:    "signed by a signing subkey of a trusted key",
			files:   []placed{{prefix: "example.com/app", fpr: f.subkey.fpr, data: f.subkey.pub}},
			image:   "example.com/app",
			sig:     f.subkey.sig,
			wantFpr: f.subkey.fpr,
		},
		{
			name:    "signed by an untrusted key",
			files:   []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			image:   "example.com/app",
			sig:     f.other.sig,
			wantErr: errdefs.ErrPermissionDenied,
			wantMsg: []string{"not trusted", FormatFingerprint(f.other.fpr)},
		},
		{
			name:    "key trusted for another prefix only",
			files:   []placed{{prefix: "example.org", fpr: f.other.fpr, data: f.other.pub}, {prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			image:   "example.com/app",
			sig:     f.other.sig,
			wantErr: errdefs.ErrPermissionDenied,
		},
		{
			name:    "tampered payload",
			files:   []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			image:   "example.com/app",
			payload: tampered,
			sig:     f.rsa.sig,
			wantErr: errdefs.ErrPermissionDenied,
			wantMsg: []string{"bad signature", FormatFingerprint(f.rsa.fpr)},
		},
		{
			name:    "tampered payload ed25519",
			files:   []placed{{prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub}},
			image:   "example.com/app",
			payload: tampered,
			sig:     f.ed.sig,
			wantErr: errdefs.ErrPermissionDenied,
		},
		{
			name:    "prefix covers names below it",
			files:   []placed{{prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub}},
			image:   "example.com/app/sub/leaf",
			sig:     f.ed.sig,
			wantFpr: f.ed.fpr,
		},
		{
			name:    "prefix does not cover a sibling",
			files:   []placed{{prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub}},
			image:   "example.com/apple",
			sig:     f.ed.sig,
			wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name:    "prefix does not cover its parent",
			files:   []placed{{prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub}},
			image:   "example.com",
			sig:     f.ed.sig,
			wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name:    "root key trusts every image",
			files:   []placed{{fpr: f.rsa.fpr, data: f.rsa.pub}},
			image:   "other.org/whatever",
			sig:     f.rsa.sig,
			wantFpr: f.rsa.fpr,
		},
		{
			name:    "system prefix key",
			files:   []placed{{system: true, prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub}},
			image:   "example.com/app",
			sig:     f.ed.sig,
			wantFpr: f.ed.fpr,
		},
		{
			name: "empty local file masks the system key",
			files: []placed{
				{system: true, prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub},
				{prefix: "example.com/app", fpr: f.ed.fpr},
			},
			image:   "example.com/app",
			sig:     f.ed.sig,
			wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name: "empty local file masks a system root key",
			files: []placed{
				{system: true, fpr: f.ed.fpr, data: f.ed.pub},
				{fpr: f.ed.fpr},
			},
			image:   "example.com/app",
			sig:     f.ed.sig,
			wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name: "mask only applies at its own place",
			files: []placed{
				{system: true, fpr: f.ed.fpr, data: f.ed.pub},
				{prefix: "example.com/app", fpr: f.ed.fpr},
			},
			image:   "example.com/app",
			sig:     f.ed.sig,
			wantFpr: f.ed.fpr,
		},
		{
			name: "masked key leaves other keys trusted",
			files: []placed{
				{system: true, prefix: "example.com", fpr: f.ed.fpr, data: f.ed.pub},
				{prefix: "example.com", fpr: f.ed.fpr},
				{system: true, prefix: "example.com", fpr: f.rsa.fpr, data: f.rsa.pub},
			},
			image:   "example.com/app",
			sig:     f.ed.sig,
			wantErr: errdefs.ErrPermissionDenied,
		},
		{
			name: "local key overrides system key",
			files: []placed{
				{system: true, prefix: "example.com/app", fpr: f.ed.fpr, data: []byte("broken system copy")},
				{prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub},
			},
			image:   "example.com/app",
			sig:     f.ed.sig,
			wantFpr: f.ed.fpr,
		},
		{
			name:    "no keys at all",
			image:   "example.com/app",
			sig:     f.rsa.sig,
			wantErr: errdefs.ErrFailedPrecondition,
			wantMsg: []string{"no keys are trusted", "nscn trust --prefix example.com/app", "--insecure-options=image"},
		},
		{
			name:    "malformed signature",
			files:   []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			image:   "example.com/app",
			sig:     garbage,
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "public key instead of a signature",
			files:   []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			image:   "example.com/app",
			sig:     pubAsSig,
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "invalid image name",
			image:   "Example.com/../app",
			sig:     f.rsa.sig,
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "key file named after another key",
			files:   []placed{{prefix: "example.com/app", fpr: f.ed.fpr, data: f.rsa.pub}},
			image:   "example.com/app",
			sig:     f.rsa.sig,
			wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name:    "revoked key",
			files:   []placed{{prefix: "example.com/app", fpr: f.revoked.fpr, data: f.revoked.pub}},
			image:   "example.com/app",
			sig:     f.revoked.sig,
			wantErr: errdefs.ErrPermissionDenied,
			wantMsg: []string{"revoked"},
		},
		{
			name:    "expiring key before expiry",
			files:   []placed{{prefix: "example.com/app", fpr: f.expiring.fpr, data: f.expiring.pub}},
			image:   "example.com/app",
			sig:     f.expiring.sig,
			wantFpr: f.expiring.fpr,
		},
		{
			name:    "expired key",
			files:   []placed{{prefix: "example.com/app", fpr: f.expiring.fpr, data: f.expiring.pub}},
			image:   "example.com/app",
			sig:     f.expiring.sig,
			now:     72 * time.Hour,
			wantErr: errdefs.ErrPermissionDenied,
			wantMsg: []string{"expired"},
		},
		{
			name:      "cancelled context",
			files:     []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			image:     "example.com/app",
			sig:       f.rsa.sig,
			cancelled: true,
			wantErr:   context.Canceled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks := newKeystore(t, tc.files...)
			if tc.now != 0 {
				ks.now = func() time.Time { return time.Now().Add(tc.now) }
			}
			payload := tc.payload
			if payload == "" {
				payload = f.payload
			}
			ctx, cancel := context.WithCancel(t.Context())
			if tc.cancelled {
				cancel()
			}
			defer cancel()
			e, err := ks.CheckSignature(ctx, tc.image, bytes.NewReader(mustRead(t, payload)), bytes.NewReader(mustRead(t, tc.sig)))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("CheckSignature() error = %v, want %v", err, tc.wantErr)
				}
				for _, m := range tc.wantMsg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not contain %q", err, m)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckSignature() error = %v", err)
			}
			if got := FormatFingerprint(hex.EncodeToString(e.PrimaryKey.Fingerprint)); got != FormatFingerprint(tc.wantFpr) {
				t.Errorf("signer = %s, want %s", got, FormatFingerprint(tc.wantFpr))
			}
		})
	}
}

func TestStoreTrustedKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	binPub := f.gpg.Run(t, "--export", f.ed.fpr)
	tests := []struct {
		name     string
		key      []byte
		prefix   string
		root     bool
		existing []placed
		wantErr  error
		wantFpr  string
		wantRel  string // path below LocalDir
	}{
		{name: "rsa for a prefix", key: f.rsa.pub, prefix: "example.com/app", wantFpr: f.rsa.fpr, wantRel: "trustedkeys/prefix.d/example.com/app/" + f.rsa.fpr},
		{name: "ed25519 as a root key", key: f.ed.pub, root: true, wantFpr: f.ed.fpr, wantRel: "trustedkeys/root.d/" + f.ed.fpr},
		{name: "binary key is stored armored", key: binPub, prefix: "example.com", wantFpr: f.ed.fpr, wantRel: "trustedkeys/prefix.d/example.com/" + f.ed.fpr},
		{name: "armored key with surrounding text", key: append(append([]byte("here is my key:\n\n"), f.rsa.pub...), "\nbye\n"...), prefix: "example.com", wantFpr: f.rsa.fpr, wantRel: "trustedkeys/prefix.d/example.com/" + f.rsa.fpr},
		{
			name: "replaces a mask", key: f.rsa.pub, prefix: "example.com", wantFpr: f.rsa.fpr,
			existing: []placed{{prefix: "example.com", fpr: f.rsa.fpr}},
			wantRel:  "trustedkeys/prefix.d/example.com/" + f.rsa.fpr,
		},
		{name: "prefix and root", key: f.rsa.pub, prefix: "example.com", root: true, wantErr: errdefs.ErrInvalidArgument},
		{name: "neither prefix nor root", key: f.rsa.pub, wantErr: errdefs.ErrInvalidArgument},
		{name: "prefix escaping the keystore", key: f.rsa.pub, prefix: "../../etc", wantErr: errdefs.ErrInvalidArgument},
		{name: "absolute prefix", key: f.rsa.pub, prefix: "/example.com", wantErr: errdefs.ErrInvalidArgument},
		{name: "prefix with empty component", key: f.rsa.pub, prefix: "example.com//app", wantErr: errdefs.ErrInvalidArgument},
		{name: "private key", key: f.gpg.ExportSecret(t, f.rsa.fpr), prefix: "example.com", wantErr: errdefs.ErrInvalidArgument},
		{name: "two keys", key: append(append([]byte{}, f.rsa.pub...), f.ed.pub...), prefix: "example.com", wantErr: errdefs.ErrInvalidArgument},
		{name: "two keys in one block", key: f.gpg.Run(t, "--armor", "--export", f.rsa.fpr, f.ed.fpr), prefix: "example.com", wantErr: errdefs.ErrInvalidArgument},
		{name: "garbage", key: []byte("not a key"), prefix: "example.com", wantErr: errdefs.ErrInvalidArgument},
		{name: "empty", key: nil, prefix: "example.com", wantErr: errdefs.ErrInvalidArgument},
		{name: "revoked key", key: f.revoked.pub, prefix: "example.com", wantErr: errdefs.ErrFailedPrecondition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks := newKeystore(t, tc.existing...)
			p, err := ks.StoreTrustedKey(t.Context(), tc.key, tc.prefix, tc.root)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("StoreTrustedKey() error = %v, want %v", err, tc.wantErr)
				}
				if _, err := os.Stat(filepath.Join(ks.LocalDir, "trustedkeys")); len(tc.existing) == 0 && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("refused key left files behind: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("StoreTrustedKey() error = %v", err)
			}
			if want := filepath.Join(ks.LocalDir, tc.wantRel); p != want {
				t.Errorf("path = %s, want %s", p, want)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("mode = %v, want 0644", fi.Mode().Perm())
			}
			for d := filepath.Dir(p); d != filepath.Dir(ks.LocalDir); d = filepath.Dir(d) {
				if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o755 {
					t.Errorf("dir %s: mode %v, err %v; want 0755", d, fi.Mode().Perm(), err)
				}
			}
			data := mustRead(t, p)
			if !bytes.HasPrefix(data, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
				t.Errorf("stored key is not armored: %.40q", data)
			}
			fpr, _, err := KeyInfo(data)
			if err != nil || fpr != tc.wantFpr {
				t.Errorf("stored key: fingerprint %s, err %v; want %s", fpr, err, tc.wantFpr)
			}
			entries, _ := os.ReadDir(filepath.Dir(p))
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temp file left behind: %s", e.Name())
				}
			}
		})
	}
}

func TestListAndRemove(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	files := []placed{
		{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub},                // local
		{system: true, fpr: f.ed.fpr, data: f.ed.pub},                               // system root
		{system: true, prefix: "example.org", fpr: f.other.fpr, data: f.other.pub},  // system, masked
		{prefix: "example.org", fpr: f.other.fpr},                                   // the mask
		{system: true, prefix: "example.com/app", fpr: f.ed.fpr, data: []byte("x")}, // overridden
		{prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub},                  // the override
		{prefix: "example.net", fpr: f.rsa.fpr},                                     // orphan mask
		{prefix: "Bad_Prefix", fpr: f.rsa.fpr, data: f.rsa.pub},                     // never used
	}

	t.Run("list", func(t *testing.T) {
		ks := newKeystore(t, files...)
		got, err := ks.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		type row struct {
			prefix, fpr string
			source      Source
			masked      bool
			uid         string
		}
		want := []row{
			{"", f.ed.fpr, SourceSystem, false, "Test Ed25519 <ed@example.com>"},
			{"example.com/app", f.rsa.fpr, SourceLocal, false, "Test RSA <rsa@example.com>"},
			{"example.com/app", f.ed.fpr, SourceLocal, false, "Test Ed25519 <ed@example.com>"},
			{"example.org", f.other.fpr, SourceSystem, true, "Someone Else <else@example.org>"},
		}
		// Within a place keys are sorted by fingerprint.
		if f.ed.fpr < f.rsa.fpr {
			want[1], want[2] = want[2], want[1]
		}
		if len(got) != len(want) {
			t.Fatalf("List() = %+v, want %d keys", got, len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.Prefix != w.prefix || g.Fingerprint != w.fpr || g.Source != w.source || g.Masked != w.masked || g.Root != (w.prefix == "") {
				t.Errorf("key %d = %+v, want %+v", i, g, w)
			}
			if len(g.UserIDs) != 1 || g.UserIDs[0] != w.uid {
				t.Errorf("key %d user IDs = %q, want %q", i, g.UserIDs, w.uid)
			}
			if !strings.HasSuffix(g.Path, w.fpr) {
				t.Errorf("key %d path = %s", i, g.Path)
			}
		}
	})

	tests := []struct {
		name        string
		fingerprint string
		prefix      string
		wantErr     error
		wantMask    bool // an empty local file remains
		wantGone    bool // the local file is gone
	}{
		{name: "local key", fingerprint: f.rsa.fpr, prefix: "example.com/app", wantGone: true},
		{name: "fingerprint as people type it", fingerprint: "0x" + FormatFingerprint(f.rsa.fpr), prefix: "example.com/app", wantGone: true},
		{name: "system root key is masked", fingerprint: f.ed.fpr, wantMask: true},
		{name: "local override of a system key becomes a mask", fingerprint: f.ed.fpr, prefix: "example.com/app", wantMask: true},
		{name: "already masked", fingerprint: f.other.fpr, prefix: "example.org", wantErr: errdefs.ErrNotFound},
		{name: "orphan mask", fingerprint: f.rsa.fpr, prefix: "example.net", wantErr: errdefs.ErrNotFound},
		{name: "not at that prefix", fingerprint: f.rsa.fpr, prefix: "example.com", wantErr: errdefs.ErrNotFound},
		{name: "not a root key", fingerprint: f.rsa.fpr, wantErr: errdefs.ErrNotFound},
		{name: "bad fingerprint", fingerprint: "abcd", wantErr: errdefs.ErrInvalidArgument},
		{name: "bad prefix", fingerprint: f.rsa.fpr, prefix: "../x", wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run("remove "+tc.name, func(t *testing.T) {
			ks := newKeystore(t, files...)
			err := ks.Remove(t.Context(), tc.fingerprint, tc.prefix)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Remove() error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Remove() error = %v", err)
			}
			fpr, _ := normalizeFingerprint(tc.fingerprint)
			local := filepath.Join(placeDir(ks.LocalDir, tc.prefix), fpr)
			fi, err := os.Stat(local)
			switch {
			case tc.wantMask && (err != nil || fi.Size() != 0):
				t.Errorf("want an empty mask file at %s: %v", local, err)
			case tc.wantGone && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("want %s gone: %v", local, err)
			}
			// Whatever happened, the key no longer trusts the prefix.
			keys, err := ks.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if k.Prefix == tc.prefix && k.Fingerprint == fpr && !k.Masked {
					t.Errorf("key still trusted after Remove: %+v", k)
				}
			}
			if err := ks.Remove(t.Context(), tc.fingerprint, tc.prefix); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("second Remove() error = %v, want not found", err)
			}
		})
	}

	t.Run("remove drops empty prefix directories", func(t *testing.T) {
		ks := newKeystore(t, placed{prefix: "example.com/deep/app", fpr: f.rsa.fpr, data: f.rsa.pub})
		if err := ks.Remove(t.Context(), f.rsa.fpr, "example.com/deep/app"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(ks.LocalDir, "trustedkeys", "prefix.d", "example.com")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("empty prefix directories left: %v", err)
		}
		if _, err := os.Stat(filepath.Join(ks.LocalDir, "trustedkeys", "prefix.d")); err != nil {
			t.Errorf("prefix.d removed: %v", err)
		}
	})

	t.Run("list of an empty keystore", func(t *testing.T) {
		ks := &Keystore{LocalDir: filepath.Join(t.TempDir(), "missing"), SystemDir: ""}
		got, err := ks.List(t.Context())
		if err != nil || len(got) != 0 {
			t.Errorf("List() = %v, %v; want nothing", got, err)
		}
	})

	t.Run("list fails on a broken key", func(t *testing.T) {
		ks := newKeystore(t, placed{prefix: "example.com", fpr: f.rsa.fpr, data: []byte("broken")})
		if _, err := ks.List(t.Context()); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("List() error = %v, want failed precondition", err)
		}
	})
}

func TestTrustsAny(t *testing.T) {
	t.Parallel()
	const fpr = "0123456789abcdef0123456789abcdef01234567"
	key := []byte("a key file; its content is read only to verify")
	tests := []struct {
		name  string
		files []placed
		image string
		want  bool
	}{
		{name: "empty keystore", image: "example.com/app", want: false},
		{name: "root key", files: []placed{{fpr: fpr, data: key}}, image: "example.com/app", want: true},
		{name: "key of a parent prefix", files: []placed{{prefix: "example.com", fpr: fpr, data: key, system: true}}, image: "example.com/app/db", want: true},
		{name: "key of a sibling prefix", files: []placed{{prefix: "example.com/apple", fpr: fpr, data: key}}, image: "example.com/app", want: false},
		{name: "key of a longer prefix", files: []placed{{prefix: "example.com/app/db", fpr: fpr, data: key}}, image: "example.com/app", want: false},
		{name: "system key masked locally", files: []placed{
			{prefix: "example.com", fpr: fpr, data: key, system: true},
			{prefix: "example.com", fpr: fpr},
		}, image: "example.com/app", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := newKeystore(t, tt.files...)
			got, err := ks.TrustsAny(context.Background(), tt.image)
			if err != nil || got != tt.want {
				t.Fatalf("TrustsAny = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := newKeystore(t).TrustsAny(context.Background(), "Not/A/Name"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad name: %v", err)
	}
}
