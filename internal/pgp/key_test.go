package pgp

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pgp/pgptest"
)

func TestKeyInfo(t *testing.T) {
	t.Parallel()
	g := pgptest.NewGPG(t)
	rsaFpr, rsaPub := g.GenKey(t, "Test RSA <rsa@example.com>", pgptest.RSA2048)
	edFpr, edPub := g.GenKey(t, "Test Ed25519 <ed@example.com>", pgptest.Ed25519)
	g.Run(t, "--quick-add-uid", edFpr, "Second <second@example.com>")
	g.Run(t, "--quick-set-primary-uid", edFpr, "Test Ed25519 <ed@example.com>")
	edPub2 := g.Export(t, edFpr)

	tests := []struct {
		name    string
		in      []byte
		wantFpr string
		wantIDs []string
		wantErr error
	}{
		{name: "rsa", in: rsaPub, wantFpr: rsaFpr, wantIDs: []string{"Test RSA <rsa@example.com>"}},
		{name: "ed25519", in: edPub, wantFpr: edFpr, wantIDs: []string{"Test Ed25519 <ed@example.com>"}},
		{name: "primary user ID first", in: edPub2, wantFpr: edFpr, wantIDs: []string{"Test Ed25519 <ed@example.com>", "Second <second@example.com>"}},
		{name: "binary", in: g.Run(t, "--export", rsaFpr), wantFpr: rsaFpr, wantIDs: []string{"Test RSA <rsa@example.com>"}},
		{name: "private key", in: g.ExportSecret(t, rsaFpr), wantErr: errdefs.ErrInvalidArgument},
		{name: "binary private key", in: g.Run(t, "--export-secret-keys", edFpr), wantErr: errdefs.ErrInvalidArgument},
		{name: "signature block", in: []byte("-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"), wantErr: errdefs.ErrInvalidArgument},
		{name: "truncated", in: rsaPub[:len(rsaPub)/2], wantErr: errdefs.ErrInvalidArgument},
		{name: "empty", in: nil, wantErr: errdefs.ErrInvalidArgument},
		{name: "too large", in: bytes.Repeat([]byte{0x99}, MaxKeySize+1), wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fpr, ids, err := KeyInfo(tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("KeyInfo() error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("KeyInfo() error = %v", err)
			}
			if fpr != tc.wantFpr || !slices.Equal(ids, tc.wantIDs) {
				t.Errorf("KeyInfo() = %s, %q; want %s, %q", fpr, ids, tc.wantFpr, tc.wantIDs)
			}
		})
	}
}

func TestFormatFingerprint(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "v4", in: "0123456789abcdef0123456789abcdef01234567", want: "0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567"},
		{name: "already formatted", in: "0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567", want: "0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567"},
		{name: "v6", in: strings.Repeat("ab", 32), want: strings.TrimSpace(strings.Repeat("ABAB ", 16))},
		{name: "not a fingerprint", in: "hello", want: "hello"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatFingerprint(tc.in); got != tc.want {
				t.Errorf("FormatFingerprint(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestValidatePrefix(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		ok     bool
	}{
		{name: "domain", prefix: "example.com", ok: true},
		{name: "path", prefix: "example.com/app/sub", ok: true},
		{name: "appc punctuation", prefix: "a-b.c_d~e/f", ok: true},
		{name: "empty", prefix: ""},
		{name: "upper case", prefix: "Example.com"},
		{name: "dot dot", prefix: "example.com/../x"},
		{name: "leading slash", prefix: "/example.com"},
		{name: "trailing slash", prefix: "example.com/"},
		{name: "double slash", prefix: "example.com//x"},
		{name: "port", prefix: "example.com:8080/x"},
		{name: "long component", prefix: strings.Repeat("a", 256)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidatePrefix(tc.prefix)
			if tc.ok != (err == nil) {
				t.Errorf("ValidatePrefix(%q) = %v, want ok=%v", tc.prefix, err, tc.ok)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not invalid argument", err)
			}
		})
	}
}

func TestAncestors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{name: "one component", in: "example.com", want: []string{"example.com"}},
		{name: "three components", in: "example.com/app/sub", want: []string{"example.com", "example.com/app", "example.com/app/sub"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ancestors(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("ancestors(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzKeyInfo checks that the key parser never panics, that whatever it
// accepts is one public key with a well-formed fingerprint, and that the
// canonical armored form the keystore writes parses back to the same key.
// Seeds (real gpg keys, private keys, garbage) are in testdata/fuzz/FuzzKeyInfo.
func FuzzKeyInfo(f *testing.F) {
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fpr, ids, err := KeyInfo(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("KeyInfo() error %v is not invalid argument", err)
			}
			return
		}
		if !isFingerprintName(fpr) {
			t.Fatalf("KeyInfo() fingerprint %q is not lowercase hex of a known length", fpr)
		}
		k, err := parseKey(data)
		if err != nil {
			t.Fatalf("parseKey() after KeyInfo() succeeded: %v", err)
		}
		fpr2, ids2, err := KeyInfo(k.armored)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v", err)
		}
		if fpr2 != fpr || !slices.Equal(ids, ids2) {
			t.Fatalf("canonical form is key %s %q, want %s %q", fpr2, ids2, fpr, ids)
		}
	})
}
