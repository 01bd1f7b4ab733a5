// Package pgp decides which OpenPGP keys nscn trusts for an image name and
// verifies detached image signatures against them.
//
// Trusted keys are armored public keys kept in files named by the key's
// lowercase hex fingerprint, in two configuration directories: the local one
// (default /etc/nscn, written by "nscn trust") and the system one (default
// /usr/lib/nscn, shipped by the distribution, never written here):
//
//	<cfg>/trustedkeys/root.d/<fingerprint>                  trusts every image
//	<cfg>/trustedkeys/prefix.d/<prefix>/<fingerprint>       trusts <prefix> and the names below it
//
// A prefix is an image name such as example.com/app and becomes nested
// directories (prefix.d/example.com/app/). It covers the names equal to it
// and those below it component by component: example.com/app covers
// example.com/app/sub but not example.com/apple. A local file with the same
// place and fingerprint as a system file replaces it; an empty local file
// masks (disables) the system key. The layout is rkt's, so rkt keystores
// can be copied over as they are.
//
// Signatures can be verified before the image's name is known, which is
// how images are fetched: the name is in the manifest, inside the
// compressed archive, and the archive must not be decompressed before its
// signature is verified. NewVerifier checks the signature against every
// trusted key without the image, Verifier.Verify checks it over the file as
// fetched, and Signer.Authorize checks the signer against the name once it
// is known. CheckSignature does all three when the name is known first.
//
// The package runs in stage0 and needs no privileges beyond write access to
// the local directory. It does not fetch keys or discover them from image
// names (that is the CLI's job), and it does not talk to gpg. See
// Documentation/signing-and-verification.md and the appc signing spec,
// https://github.com/appc/spec/blob/master/spec/discovery.md.
package pgp
