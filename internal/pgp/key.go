package pgp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/nosecone/nscn/internal/errdefs"
)

// MaxKeySize is the largest key, armored or binary, that the keystore reads
// or accepts. Keys with many third-party certifications stay well below it.
const MaxKeySize = 4 << 20

// KeyInfo parses an OpenPGP public key, armored or binary, and returns its
// lowercase hex fingerprint and its user IDs, the primary one first. It
// fails with errdefs.ErrInvalidArgument unless the input holds exactly one
// public key (private keys are refused, so that a secret is never written
// to the keystore by mistake).
func KeyInfo(armored []byte) (fingerprint string, userIDs []string, err error) {
	k, err := parseKey(armored)
	if err != nil {
		return "", nil, err
	}
	return k.fingerprint, k.userIDs(), nil
}

// FormatFingerprint formats a hex fingerprint for people: upper case, in
// groups of four digits separated by spaces, as gpg prints it. Input that is
// not hex is returned unchanged.
func FormatFingerprint(fingerprint string) string {
	f, err := normalizeFingerprint(fingerprint)
	if err != nil {
		return fingerprint
	}
	f = strings.ToUpper(f)
	var b strings.Builder
	for i := 0; i < len(f); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f[i:min(i+4, len(f))])
	}
	return b.String()
}

// key is one parsed public key and its canonical armored form, which is what
// the keystore writes.
type key struct {
	entity      *openpgp.Entity
	fingerprint string // lowercase hex
	armored     []byte
}

// userIDs returns the key's user IDs, the primary one first and the others
// sorted.
func (k *key) userIDs() []string {
	ids := make([]string, 0, len(k.entity.Identities))
	var primary string
	if p := k.entity.PrimaryIdentity(); p != nil {
		primary = p.Name
		ids = append(ids, primary)
	}
	var rest []string
	for name := range k.entity.Identities {
		if name != primary {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	return append(ids, rest...)
}

// checkUsable refuses keys that can no longer make valid signatures.
func (k *key) checkUsable(now time.Time) error {
	if k.entity.Revoked(now) {
		return errdefs.FailedPrecondition("key %s is revoked", FormatFingerprint(k.fingerprint))
	}
	sig, _ := k.entity.PrimarySelfSignature()
	if k.entity.PrimaryKey.KeyExpired(sig, now) {
		return errdefs.FailedPrecondition("key %s has expired", FormatFingerprint(k.fingerprint))
	}
	return nil
}

var (
	armorPGPStart  = []byte("-----BEGIN PGP ")
	errNotOneKey   = errors.New("expected exactly one public key")
	errPrivateKey  = errors.New("this is a private key; export the public key with gpg --armor --export")
	errNoKeyFound  = errors.New("no OpenPGP key found")
	errKeyTooLarge = fmt.Errorf("key is larger than %d bytes", MaxKeySize)
)

// isArmored reports whether data is text, to be searched for an ASCII armor
// block, rather than binary OpenPGP packets, whose first byte always has the
// high bit set (RFC 9580, section 4.2).
func isArmored(data []byte) bool {
	return len(data) > 0 && data[0]&0x80 == 0
}

// parseKey parses exactly one public key, armored or binary.
func parseKey(data []byte) (*key, error) {
	if len(data) > MaxKeySize {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, errKeyTooLarge)
	}
	body := data
	if isArmored(data) {
		if n := bytes.Count(data, armorPGPStart); n > 1 {
			return nil, errdefs.InvalidArgument("parse key: found %d armored blocks: %w", n, errNotOneKey)
		}
		block, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, errdefs.InvalidArgument("parse key: decode armor: %w", err)
		}
		switch block.Type {
		case openpgp.PublicKeyType:
		case openpgp.PrivateKeyType:
			return nil, errdefs.InvalidArgument("parse key: %w", errPrivateKey)
		default:
			return nil, errdefs.InvalidArgument("parse key: armored block is %q, not %q", block.Type, openpgp.PublicKeyType)
		}
		b, err := io.ReadAll(io.LimitReader(block.Body, MaxKeySize+1))
		if err != nil {
			return nil, errdefs.InvalidArgument("parse key: decode armor: %w", err)
		}
		if len(b) > MaxKeySize {
			return nil, errdefs.With(errdefs.ErrInvalidArgument, errKeyTooLarge)
		}
		body = b
	}
	if len(body) == 0 {
		return nil, errdefs.InvalidArgument("parse key: %w", errNoKeyFound)
	}

	packets := packet.NewReader(bytes.NewReader(body))
	e, err := openpgp.ReadEntity(packets)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errdefs.InvalidArgument("parse key: %w: %w", errNoKeyFound, err)
		}
		return nil, errdefs.InvalidArgument("parse key: %w", err)
	}
	switch _, err := packets.Next(); {
	case errors.Is(err, io.EOF):
	case err == nil:
		return nil, errdefs.InvalidArgument("parse key: %w, found more", errNotOneKey)
	default:
		return nil, errdefs.InvalidArgument("parse key: trailing data: %w", err)
	}
	if e.PrivateKey != nil {
		return nil, errdefs.InvalidArgument("parse key: %w", errPrivateKey)
	}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil {
			return nil, errdefs.InvalidArgument("parse key: %w", errPrivateKey)
		}
	}

	var out bytes.Buffer
	w, err := armor.Encode(&out, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, fmt.Errorf("armor key: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return nil, fmt.Errorf("armor key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("armor key: %w", err)
	}
	out.WriteByte('\n')
	return &key{
		entity:      e,
		fingerprint: hex.EncodeToString(e.PrimaryKey.Fingerprint),
		armored:     out.Bytes(),
	}, nil
}

// normalizeFingerprint accepts a fingerprint as people type it (upper or
// lower case, grouped with spaces, with a 0x prefix) and returns the
// lowercase hex form used as a file name. Version 4 keys have 40 digits,
// version 5 and 6 keys 64.
func normalizeFingerprint(s string) (string, error) {
	f := strings.ToLower(strings.Join(strings.Fields(s), ""))
	f = strings.TrimPrefix(f, "0x")
	if len(f) != 40 && len(f) != 64 {
		return "", errdefs.InvalidArgument("fingerprint %q: want 40 or 64 hex digits", s)
	}
	if _, err := hex.DecodeString(f); err != nil {
		return "", errdefs.InvalidArgument("fingerprint %q: not hex", s)
	}
	return f, nil
}

// isFingerprintName reports whether a file name in a keystore directory
// names a key.
func isFingerprintName(name string) bool {
	f, err := normalizeFingerprint(name)
	return err == nil && f == name
}
