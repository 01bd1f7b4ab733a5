package pgp

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pgp/pgptest"
)

// TestVerifier checks the three steps of a verification before the image
// name is known: NewVerifier (signature and keys, no image), Verify (the
// image bytes) and Signer.Authorize (the name). Each case fails at most one
// step; the steps after it are not run.
func TestVerifier(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tampered := pgptest.WriteFile(t, f.dir, "tampered.aci", []byte("pretend this is an image, changed\n"))
	garbage := pgptest.WriteFile(t, f.dir, "garbage.asc", []byte("this is not a signature"))

	type step int
	const (
		none step = iota
		newVerifier
		verify
		authorize
	)
	tests := []struct {
		name     string
		files    []placed
		sig      string
		payload  string // default f.payload
		image    string // the name authorized
		failAt   step
		wantErr  error
		wantMsg  []string
		wantRoot bool
	}{
		{
			name:  "prefix key for its prefix",
			files: []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			sig:   f.rsa.sig, image: "example.com/app",
		},
		{
			name:  "prefix key below its prefix",
			files: []placed{{prefix: "example.com", fpr: f.ed.fpr, data: f.ed.pub}},
			sig:   f.ed.sig, image: "example.com/app/db",
		},
		{
			name:  "root key for any name",
			files: []placed{{fpr: f.ed.fpr, data: f.ed.pub}, {prefix: "example.com", fpr: f.rsa.fpr, data: f.rsa.pub}},
			sig:   f.ed.sig, image: "other.org/app", wantRoot: true,
		},
		{
			name:  "signing subkey",
			files: []placed{{prefix: "example.com/app", fpr: f.subkey.fpr, data: f.subkey.pub}},
			sig:   f.subkey.sig, image: "example.com/app",
		},
		{
			name:  "binary signature",
			files: []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			sig:   f.rsa.binSig, image: "example.com/app",
		},
		{
			name:   "malformed signature",
			files:  []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			sig:    garbage,
			failAt: newVerifier, wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:   "no keys at all",
			sig:    f.rsa.sig,
			failAt: newVerifier, wantErr: errdefs.ErrFailedPrecondition,
			wantMsg: []string{"no keys are trusted", FormatFingerprint(f.rsa.fpr), "nscn trust --prefix", "--insecure-options=image"},
		},
		{
			name: "only a masked key",
			files: []placed{
				{system: true, prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub},
				{prefix: "example.com/app", fpr: f.ed.fpr},
			},
			sig:    f.ed.sig,
			failAt: newVerifier, wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name:   "signer trusted nowhere",
			files:  []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			sig:    f.other.sig,
			failAt: newVerifier, wantErr: errdefs.ErrPermissionDenied,
			wantMsg: []string{"not trusted for any image", FormatFingerprint(f.other.fpr)},
		},
		{
			name: "signer unknown and a key file broken",
			files: []placed{
				{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub},
				{prefix: "example.org", fpr: f.ed.fpr, data: []byte("broken")},
			},
			sig:    f.other.sig,
			failAt: newVerifier, wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name:  "tampered payload",
			files: []placed{{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub}},
			sig:   f.rsa.sig, payload: tampered,
			failAt: verify, wantErr: errdefs.ErrPermissionDenied,
			wantMsg: []string{"bad signature"},
		},
		{
			name:   "revoked key",
			files:  []placed{{prefix: "example.com/app", fpr: f.revoked.fpr, data: f.revoked.pub}},
			sig:    f.revoked.sig,
			failAt: verify, wantErr: errdefs.ErrPermissionDenied,
			wantMsg: []string{"revoked"},
		},
		{
			name:  "sibling of the prefix, no key for it",
			files: []placed{{prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub}},
			sig:   f.ed.sig, image: "example.com/apple",
			failAt: authorize, wantErr: errdefs.ErrFailedPrecondition,
			wantMsg: []string{"nscn trust --prefix example.com/apple", `prefix "example.com/app" only`},
		},
		{
			name: "another prefix has keys for the name",
			files: []placed{
				{prefix: "example.org", fpr: f.other.fpr, data: f.other.pub},
				{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub},
			},
			sig: f.other.sig, image: "example.com/app",
			failAt: authorize, wantErr: errdefs.ErrPermissionDenied,
			wantMsg: []string{"not trusted for this image", `prefix "example.org"`},
		},
		{
			name: "mask only applies at its own place",
			files: []placed{
				{system: true, fpr: f.ed.fpr, data: f.ed.pub},
				{fpr: f.ed.fpr},
				{prefix: "example.com/app", fpr: f.ed.fpr, data: f.ed.pub},
			},
			sig: f.ed.sig, image: "other.org/app",
			failAt: authorize, wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name: "broken key file elsewhere does not matter",
			files: []placed{
				{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub},
				{prefix: "example.org", fpr: f.ed.fpr, data: []byte("broken")},
			},
			sig: f.rsa.sig, image: "example.com/app",
		},
		{
			name: "broken key file covering the name",
			files: []placed{
				{prefix: "example.com/app", fpr: f.rsa.fpr, data: f.rsa.pub},
				{prefix: "example.com", fpr: f.ed.fpr, data: f.rsa.pub},
			},
			sig: f.rsa.sig, image: "example.com/app",
			failAt: authorize, wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name:  "invalid name",
			files: []placed{{fpr: f.rsa.fpr, data: f.rsa.pub}},
			sig:   f.rsa.sig, image: "Example.com/../app", wantRoot: true,
			failAt: authorize, wantErr: errdefs.ErrInvalidArgument,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks := newKeystore(t, tc.files...)
			check := func(at step, err error) bool {
				t.Helper()
				if tc.failAt != at {
					if err != nil {
						t.Fatalf("step %d failed: %v", at, err)
					}
					return false
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("step %d error = %v, want %v", at, err, tc.wantErr)
				}
				for _, m := range tc.wantMsg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not contain %q", err, m)
					}
				}
				return true
			}
			v, err := ks.NewVerifier(t.Context(), bytes.NewReader(mustRead(t, tc.sig)))
			if check(newVerifier, err) {
				return
			}
			payload := tc.payload
			if payload == "" {
				payload = f.payload
			}
			s, err := v.Verify(t.Context(), bytes.NewReader(mustRead(t, payload)))
			if check(verify, err) {
				return
			}
			if s.Root() != tc.wantRoot {
				t.Errorf("Root() = %v, want %v", s.Root(), tc.wantRoot)
			}
			if check(authorize, s.Authorize(tc.image)) {
				return
			}
			if tc.failAt != none {
				t.Fatalf("no step failed, want step %d to", tc.failAt)
			}
		})
	}
}

// FuzzReadSignature checks that the detached-signature parser, which sees
// a signature before anything of the image is read, never panics, fails
// only with InvalidArgument, and that what it accepts names a signer for
// every packet. Seeds (real gpg signatures, armored and binary, and a
// public key) are in testdata/fuzz/FuzzReadSignature.
func FuzzReadSignature(f *testing.F) {
	f.Add([]byte("-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte("this is not a signature"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := readSignature(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("readSignature() error %v is not invalid argument", err)
			}
			return
		}
		if len(d.issuers) == 0 || len(d.body) == 0 {
			t.Fatalf("readSignature() accepted %q with no signer", data)
		}
		if !d.anonym && len(d.keyIDs) != len(d.issuers) {
			t.Fatalf("readSignature() found %d issuers but %d key IDs", len(d.issuers), len(d.keyIDs))
		}
	})
}
