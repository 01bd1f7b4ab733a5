package pgp

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/nosecone/nscn/internal/errdefs"
)

// maxSignatureSize bounds a detached signature; real ones are a few hundred
// bytes per signer.
const maxSignatureSize = 1 << 20

// Signatures are checked in two steps, so that an image is never
// decompressed before its signature is verified: the image name that picks
// the trusted keys is in the image's manifest, inside the compressed
// archive. NewVerifier and Verifier.Verify check the signature against
// every trusted key, whatever it is trusted for, over the file as fetched;
// Signer.Authorize then checks that the key that signed is trusted for the
// image's name, once that is known. CheckSignature does both when the name
// is known first.

// CheckSignature verifies signature, a detached OpenPGP signature (armored,
// as appc image signatures are, or binary) of the bytes read from signed,
// against the keys that trust imageName: the root keys and the keys of every
// prefix covering it, less the masked ones. It reads signed to the end. On
// success it returns the key that made the signature.
//
// Errors, tested with errors.Is:
//   - errdefs.ErrInvalidArgument: imageName is not a valid name, or the
//     signature is malformed or uses an unsupported algorithm;
//   - errdefs.ErrFailedPrecondition: no key trusts imageName (the message
//     says how to trust one), or a trusted key file is broken;
//   - errdefs.ErrPermissionDenied: the signer is not trusted for imageName,
//     the signature does not match the data, or the signing key is revoked
//     or expired.
//
// Errors reading signed, including ctx being done, come back wrapped as
// they are.
func (ks *Keystore) CheckSignature(ctx context.Context, imageName string, signed io.Reader, signature io.Reader) (*openpgp.Entity, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateName("image name", imageName); err != nil {
		return nil, err
	}
	subject := fmt.Sprintf("verify signature of image %q", imageName)
	sig, err := readSignature(signature)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	trust, err := ks.loadTrust(append([]string{""}, ancestors(imageName)...))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	if err := trust.brokenErr(); err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	if len(trust.ring) == 0 {
		return nil, noKeysFor(imageName, "")
	}
	v := &Verifier{sig: sig, trust: trust, clock: ks.clock, subject: subject, scope: "for this image"}
	s, err := v.Verify(ctx, signed)
	if err != nil {
		return nil, err
	}
	return s.Entity, nil
}

// noKeysFor is the error for an image name no key is trusted for. note,
// when set, says more about the signer.
func noKeysFor(imageName, note string) error {
	return errdefs.FailedPrecondition(
		"verify signature of image %q: no keys are trusted for it%s; trust the key that signed it with "+
			"\"nscn trust --prefix %s <key file or URL>\", or skip signature verification with --insecure-options=image",
		imageName, note, imageName)
}

// Verifier checks one detached signature against every trusted key of a
// keystore, before the name of the image it signs is known.
//
// Use it in three steps: NewVerifier reads the signature and the keys
// without the image, and already refuses a malformed signature or one that
// no trusted key made; Verify reads the image file as fetched (compressed)
// once and returns the Signer; Signer.Authorize checks that the signer is
// trusted for the image's name, read from the image's manifest. The image
// is trusted only once all three succeeded.
type Verifier struct {
	sig     *detached
	trust   *trustSet
	clock   func() time.Time
	subject string // what messages say is being done
	scope   string // what a signer unknown to trust is not trusted for
}

// NewVerifier reads signature, a detached OpenPGP signature (armored or
// binary), and the keystore's trusted keys: the root keys and the keys of
// every prefix, less the masked ones. It reads no image, so that an image
// whose signature can never verify is refused before it is read, let alone
// decompressed.
//
// Errors, tested with errors.Is:
//   - errdefs.ErrInvalidArgument: the signature is malformed;
//   - errdefs.ErrFailedPrecondition: no key at all is trusted, or the signer
//     is none of the trusted keys that could be read and a trusted key file
//     is broken (it might hold the signer);
//   - errdefs.ErrPermissionDenied: the signer is not a trusted key (the
//     openpgp cause is pgperrors.ErrUnknownIssuer).
func (ks *Keystore) NewVerifier(ctx context.Context, signature io.Reader) (*Verifier, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	const subject = "verify signature"
	sig, err := readSignature(signature)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	prefixes, err := ks.prefixes()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	trust, err := ks.loadTrust(append([]string{""}, prefixes...))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	broken := trust.brokenErr()
	switch {
	case len(trust.ring) == 0 && broken == nil:
		return nil, errdefs.FailedPrecondition(
			"%s: no keys are trusted, and the image is signed by key %s; once you have checked that key, trust it with "+
				"\"nscn trust --prefix <the image's name or a prefix of it> <key file or URL>\", or skip signature verification with --insecure-options=image",
			subject, sig.signers())
	case !trust.knows(sig) && broken != nil:
		return nil, fmt.Errorf("%s: signed by key %s, which is none of the trusted keys that could be read: %w", subject, sig.signers(), broken)
	case !trust.knows(sig):
		return nil, classifyVerifyError(subject, "for any image", sig.signers(), pgperrors.ErrUnknownIssuer)
	}
	return &Verifier{sig: sig, trust: trust, clock: ks.clock, subject: subject, scope: "for any image"}, nil
}

// Verify reads signed to the end and checks the signature over its bytes.
// It returns the key that made the signature, whose trust for the image's
// name is still to be checked with Signer.Authorize. It may be called again
// with another reader.
//
// Errors, tested with errors.Is: errdefs.ErrInvalidArgument for a
// malformed or unsupported signature; errdefs.ErrPermissionDenied when the
// signature does not match the data, or the signing key is revoked or
// expired. Errors reading signed, including ctx being done, come back
// wrapped as they are.
func (v *Verifier) Verify(ctx context.Context, signed io.Reader) (*Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	in := &ctxReader{ctx: ctx, r: signed}
	e, err := openpgp.CheckDetachedSignature(v.trust.ring, in, bytes.NewReader(v.sig.body), &packet.Config{Time: v.clock})
	if in.err != nil {
		return nil, fmt.Errorf("%s: read image: %w", v.subject, in.err)
	}
	if err != nil {
		return nil, classifyVerifyError(v.subject, v.scope, v.sig.signers(), err)
	}
	fpr := strings.ToLower(hex.EncodeToString(e.PrimaryKey.Fingerprint))
	return &Signer{Entity: e, Fingerprint: fpr, places: v.trust.at[fpr], trust: v.trust}, nil
}

// Signer is a trusted key that made a good signature, and the places it
// is trusted at.
type Signer struct {
	// Entity is the key, as its trusted key file holds it.
	Entity *openpgp.Entity
	// Fingerprint is the lowercase hex fingerprint of the primary key, the
	// name of its key file.
	Fingerprint string

	places []string // "" for a root key
	trust  *trustSet
}

// Root reports whether the signer is a root key, trusted for every image:
// then Authorize fails only for a broken key file (or an invalid name),
// and the image's name is not needed to decide trust.
func (s *Signer) Root() bool {
	return slices.Contains(s.places, "")
}

// Authorize checks that the signer is trusted for imageName: that it is a
// root key or a key of a prefix covering the name, as CheckSignature
// would have it.
//
// Errors, tested with errors.Is: errdefs.ErrInvalidArgument for an
// invalid name; errdefs.ErrFailedPrecondition when no key at all is trusted
// for the name (the message says how to trust one) or a key file that
// would apply to it is broken; errdefs.ErrPermissionDenied when keys are
// trusted for the name but the signer is not one of them.
func (s *Signer) Authorize(imageName string) error {
	if err := validateName("image name", imageName); err != nil {
		return err
	}
	covering := append([]string{""}, ancestors(imageName)...)
	keyed := false
	for _, p := range covering {
		if err := s.trust.broken[p]; err != nil {
			return fmt.Errorf("verify signature of image %q: %w", imageName, err)
		}
		keyed = keyed || s.trust.keyed[p]
	}
	for _, p := range s.places {
		if slices.Contains(covering, p) {
			return nil
		}
	}
	fpr := FormatFingerprint(s.Fingerprint)
	if !keyed {
		return noKeysFor(imageName, fmt.Sprintf(" (key %s, which signed it, is trusted for %s only)", fpr, placeList(s.places)))
	}
	return errdefs.PermissionDenied("verify signature of image %q: signed by key %s, which is not trusted for this image (only for %s)",
		imageName, fpr, placeList(s.places))
}

// placeList names places in messages.
func placeList(places []string) string {
	names := make([]string, len(places))
	for i, p := range places {
		names[i] = placeName(p)
	}
	return strings.Join(names, ", ")
}

// detached is a parsed detached signature.
type detached struct {
	body    []byte   // binary packets
	issuers []string // who made each signature packet, for messages
	keyIDs  []uint64 // the issuer key ID of each packet that has one
	anonym  bool     // a packet names its issuer by fingerprint only
}

func (d *detached) signers() string { return strings.Join(d.issuers, ", ") }

// readSignature reads a detached signature, armored or binary, and checks
// that it holds only signature packets.
func readSignature(r io.Reader) (*detached, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSignatureSize+1))
	if err != nil {
		return nil, fmt.Errorf("read signature: %w", err)
	}
	if len(data) > maxSignatureSize {
		return nil, errdefs.InvalidArgument("signature is larger than %d bytes", maxSignatureSize)
	}
	body := data
	if isArmored(data) {
		block, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, errdefs.InvalidArgument("decode armored signature: %w", err)
		}
		if block.Type != openpgp.SignatureType {
			return nil, errdefs.InvalidArgument("armored block is %q, not %q", block.Type, openpgp.SignatureType)
		}
		if body, err = io.ReadAll(block.Body); err != nil {
			return nil, errdefs.InvalidArgument("decode armored signature: %w", err)
		}
	}
	d := &detached{body: body}
	packets := packet.NewReader(bytes.NewReader(body))
	for {
		p, err := packets.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errdefs.InvalidArgument("parse signature: %w", err)
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			return nil, errdefs.InvalidArgument("parse signature: found a %T packet in a detached signature", p)
		}
		if s.IssuerKeyId != nil {
			d.keyIDs = append(d.keyIDs, *s.IssuerKeyId)
		} else {
			d.anonym = true
		}
		switch {
		case len(s.IssuerFingerprint) > 0:
			d.issuers = append(d.issuers, FormatFingerprint(hex.EncodeToString(s.IssuerFingerprint)))
		case s.IssuerKeyId != nil:
			d.issuers = append(d.issuers, fmt.Sprintf("%016X", *s.IssuerKeyId))
		default:
			return nil, errdefs.InvalidArgument("parse signature: signature names no issuer key")
		}
	}
	if len(d.issuers) == 0 {
		return nil, errdefs.InvalidArgument("parse signature: no signature packet found")
	}
	return d, nil
}

// classifyVerifyError turns an openpgp verification error into a message for
// the user and an errdefs class, keeping the cause. subject says what was
// being done, scope what a signer that is not a trusted key is not trusted
// for.
func classifyVerifyError(subject, scope, signers string, err error) error {
	var (
		structural  pgperrors.StructuralError
		unsupported pgperrors.UnsupportedError
		invalid     pgperrors.InvalidArgumentError
		bad         pgperrors.SignatureError
	)
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return errdefs.PermissionDenied("%s: signed by key %s, which is not trusted %s: %w", subject, signers, scope, err)
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return errdefs.PermissionDenied("%s: signing key %s is revoked: %w", subject, signers, err)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return errdefs.PermissionDenied("%s: signing key %s has expired: %w", subject, signers, err)
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return errdefs.PermissionDenied("%s: signature by key %s has expired: %w", subject, signers, err)
	case errors.As(err, &structural), errors.As(err, &unsupported), errors.As(err, &invalid):
		return errdefs.InvalidArgument("%s: malformed or unsupported signature by key %s: %w", subject, signers, err)
	case errors.As(err, &bad):
		return errdefs.PermissionDenied("%s: bad signature by key %s, the image does not match it: %w", subject, signers, err)
	}
	return errdefs.PermissionDenied("%s: signature by key %s rejected: %w", subject, signers, err)
}

// ctxReader stops reading when ctx is done and remembers the first read
// error, so that it is not mistaken for a bad signature.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && c.err == nil {
		c.err = err
	}
	return n, err
}
