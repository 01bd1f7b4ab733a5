package pgp

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/nosecone/nscn/internal/errdefs"
)

// maxSignatureSize bounds a detached signature; real ones are a few hundred
// bytes per signer.
const maxSignatureSize = 1 << 20

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
	sig, err := readSignature(signature)
	if err != nil {
		return nil, fmt.Errorf("verify signature of image %q: %w", imageName, err)
	}
	ring, err := ks.keysFor(imageName)
	if err != nil {
		return nil, fmt.Errorf("verify signature of image %q: %w", imageName, err)
	}
	if len(ring) == 0 {
		return nil, errdefs.FailedPrecondition(
			"verify signature of image %q: no keys are trusted for it; trust the key that signed it with "+
				"\"nscn trust --prefix %s <key file or URL>\", or skip signature verification with --insecure-options=image",
			imageName, imageName)
	}
	in := &ctxReader{ctx: ctx, r: signed}
	signer, err := openpgp.CheckDetachedSignature(ring, in, bytes.NewReader(sig.body), &packet.Config{Time: ks.clock})
	if in.err != nil {
		return nil, fmt.Errorf("verify signature of image %q: read image: %w", imageName, in.err)
	}
	if err != nil {
		return nil, classifyVerifyError(imageName, sig.signers(), err)
	}
	return signer, nil
}

// detached is a parsed detached signature.
type detached struct {
	body    []byte   // binary packets
	issuers []string // who made each signature packet, for messages
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
// the user and an errdefs class, keeping the cause.
func classifyVerifyError(imageName, signers string, err error) error {
	var (
		structural  pgperrors.StructuralError
		unsupported pgperrors.UnsupportedError
		invalid     pgperrors.InvalidArgumentError
		bad         pgperrors.SignatureError
	)
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return errdefs.PermissionDenied("verify signature of image %q: signed by key %s, which is not trusted for this image: %w", imageName, signers, err)
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return errdefs.PermissionDenied("verify signature of image %q: signing key %s is revoked: %w", imageName, signers, err)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return errdefs.PermissionDenied("verify signature of image %q: signing key %s has expired: %w", imageName, signers, err)
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return errdefs.PermissionDenied("verify signature of image %q: signature by key %s has expired: %w", imageName, signers, err)
	case errors.As(err, &structural), errors.As(err, &unsupported), errors.As(err, &invalid):
		return errdefs.InvalidArgument("verify signature of image %q: malformed or unsupported signature by key %s: %w", imageName, signers, err)
	case errors.As(err, &bad):
		return errdefs.PermissionDenied("verify signature of image %q: bad signature by key %s, the image does not match it: %w", imageName, signers, err)
	}
	return errdefs.PermissionDenied("verify signature of image %q: signature by key %s rejected: %w", imageName, signers, err)
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
