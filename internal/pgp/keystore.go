package pgp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Directory names inside a configuration directory.
const (
	trustedKeysDir = "trustedkeys"
	rootDir        = "root.d"
	prefixDir      = "prefix.d"
)

// Keystore is the set of trusted keys kept under two configuration
// directories. LocalDir (default /etc/nscn) is the only one written to;
// SystemDir (default /usr/lib/nscn) is read only. Either may be empty, which
// means "no such directory". The zero Keystore trusts nothing.
//
// A Keystore holds no state besides the two paths: every call reads the
// directories again, so changes made by another process are seen at once.
type Keystore struct {
	LocalDir  string
	SystemDir string

	// now is the clock used for expiry and revocation checks; nil means
	// time.Now. Tests set it.
	now func() time.Time
}

// Source tells which configuration directory a trusted key comes from.
type Source string

// The sources of a trusted key.
const (
	SourceLocal  Source = "local"
	SourceSystem Source = "system"
)

// TrustedKey describes one key file of the keystore, as List reports it.
type TrustedKey struct {
	// Prefix is the image name prefix the key is trusted for; it is empty
	// for a root key.
	Prefix string
	// Root is true for a key that trusts every image.
	Root bool
	// Fingerprint is the lowercase hex fingerprint, also the file name.
	Fingerprint string
	// Path is the key file. For a masked key it is the system file that the
	// empty local file masks.
	Path string
	// UserIDs are the key's user IDs, the primary one first.
	UserIDs []string
	// Source is the directory the key file is in.
	Source Source
	// Masked is true for a system key that an empty local file disables.
	// Masked keys are listed but never used.
	Masked bool
}

func (ks *Keystore) clock() time.Time {
	if ks.now != nil {
		return ks.now()
	}
	return time.Now()
}

// validName is the appc AC Identifier syntax that image names and prefixes
// follow: lowercase alphanumerics separated by single -._~/ characters.
// Compiled on first use: every nscn command links this package, and few
// check a name (compiling at init cost each command start).
var validName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9]+([-._~/][a-z0-9]+)*$`)
})

// ValidatePrefix checks that prefix is an image name prefix that can be
// stored: an appc AC Identifier such as example.com/app, whose path
// components become directories. It fails with errdefs.ErrInvalidArgument.
func ValidatePrefix(prefix string) error {
	return validateName("prefix", prefix)
}

func validateName(what, name string) error {
	if !validName().MatchString(name) {
		return errdefs.InvalidArgument("%s %q is not a valid image name (lowercase letters, digits and -._~/ between them, like example.com/app)", what, name)
	}
	for _, c := range strings.Split(name, "/") {
		if len(c) > 255 {
			return errdefs.InvalidArgument("%s %q has a path component longer than 255 bytes", what, name)
		}
	}
	return nil
}

// placeDir is the directory, under the configuration directory cfg, that
// holds the keys for prefix; the empty prefix means the root keys.
func placeDir(cfg, prefix string) string {
	if prefix == "" {
		return filepath.Join(cfg, trustedKeysDir, rootDir)
	}
	return filepath.Join(cfg, trustedKeysDir, prefixDir, filepath.FromSlash(prefix))
}

// placeName names a place in messages.
func placeName(prefix string) string {
	if prefix == "" {
		return "root"
	}
	return fmt.Sprintf("prefix %q", prefix)
}

// keyFile is what a configuration directory holds for one fingerprint at one
// place.
type keyFile struct {
	path  string
	empty bool
}

// storedKey is one fingerprint at one place after local files have
// overridden or masked system files.
type storedKey struct {
	prefix      string
	fingerprint string
	path        string
	source      Source
	masked      bool
}

// readPlace lists the key files of one configuration directory at one
// place. A missing directory holds no keys.
func readPlace(cfg, prefix string) (map[string]keyFile, error) {
	if cfg == "" {
		return nil, nil
	}
	dir := placeDir(cfg, prefix)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read trusted keys of %s: %w", placeName(prefix), err)
	}
	files := make(map[string]keyFile)
	for _, e := range entries {
		if !isFingerprintName(e.Name()) {
			continue // README files, temp files of an interrupted write
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p) // admins may symlink key files
		if errors.Is(err, fs.ErrNotExist) {
			continue // dangling symlink, or removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read trusted keys of %s: %w", placeName(prefix), err)
		}
		if !fi.Mode().IsRegular() {
			continue // a directory is a longer prefix
		}
		files[e.Name()] = keyFile{path: p, empty: fi.Size() == 0}
	}
	return files, nil
}

// placeKeys returns the keys at one place, sorted by fingerprint, with local
// files overriding system ones and empty local files masking them. Masked
// keys are included with masked set.
func (ks *Keystore) placeKeys(prefix string) ([]storedKey, error) {
	system, err := readPlace(ks.SystemDir, prefix)
	if err != nil {
		return nil, err
	}
	local, err := readPlace(ks.LocalDir, prefix)
	if err != nil {
		return nil, err
	}
	var keys []storedKey
	add := func(fpr string) {
		sk := storedKey{prefix: prefix, fingerprint: fpr}
		l, inLocal := local[fpr]
		s, inSystem := system[fpr]
		switch {
		case inLocal && !l.empty:
			sk.path, sk.source = l.path, SourceLocal
		case inSystem && !s.empty:
			sk.path, sk.source, sk.masked = s.path, SourceSystem, inLocal
		default:
			return // an empty file alone trusts nothing
		}
		keys = append(keys, sk)
	}
	for fpr := range local {
		add(fpr)
	}
	for fpr := range system {
		if _, ok := local[fpr]; !ok {
			add(fpr)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].fingerprint < keys[j].fingerprint })
	return keys, nil
}

// load reads and parses a trusted key file. A file that does not hold
// exactly the public key its name promises is a broken configuration.
func load(sk storedKey) (*key, error) {
	f, err := os.Open(sk.path)
	if err != nil {
		return nil, fmt.Errorf("read trusted key: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("read trusted key %s: %w", sk.path, err)
	}
	k, err := parseKey(data)
	if err != nil {
		return nil, errdefs.FailedPrecondition("trusted key %s: %w", sk.path, err)
	}
	if k.fingerprint != sk.fingerprint {
		return nil, errdefs.FailedPrecondition("trusted key %s: file holds key %s, not the one its name says", sk.path, FormatFingerprint(k.fingerprint))
	}
	return k, nil
}

// ancestors returns the prefixes that cover name, shortest first:
// example.com, example.com/app, example.com/app/sub for example.com/app/sub.
func ancestors(name string) []string {
	parts := strings.Split(name, "/")
	out := make([]string, len(parts))
	for i := range parts {
		out[i] = strings.Join(parts[:i+1], "/")
	}
	return out
}

// trustSet is the unmasked trusted keys of some places, loaded: the key
// ring to verify a signature with, and where each key is trusted.
type trustSet struct {
	ring openpgp.EntityList
	// at lists the places ("" for root.d) each key is trusted at, by
	// lowercase hex fingerprint.
	at map[string][]string
	// keyed holds the places with at least one unmasked key, broken ones
	// included.
	keyed map[string]bool
	// broken holds, by place, why a key file there could not be used; a
	// broken file stops the verification of every image it applies to.
	broken map[string]error
	places []string // the places loaded, in order
}

// loadTrust loads the unmasked keys of places. A key trusted at several
// places is loaded once. A key file that cannot be used is recorded in
// broken rather than failing the whole load, since it only matters to the
// images its place covers.
func (ks *Keystore) loadTrust(places []string) (*trustSet, error) {
	ts := &trustSet{at: map[string][]string{}, keyed: map[string]bool{}, broken: map[string]error{}, places: places}
	for _, prefix := range places {
		keys, err := ks.placeKeys(prefix)
		if err != nil {
			return nil, err
		}
		for _, sk := range keys {
			if sk.masked {
				continue
			}
			ts.keyed[prefix] = true
			if _, ok := ts.at[sk.fingerprint]; !ok {
				k, err := load(sk)
				if err != nil {
					if ts.broken[prefix] == nil {
						ts.broken[prefix] = err
					}
					continue
				}
				ts.ring = append(ts.ring, k.entity)
			}
			ts.at[sk.fingerprint] = append(ts.at[sk.fingerprint], prefix)
		}
	}
	return ts, nil
}

// brokenErr returns the error of the first broken place, or nil.
func (ts *trustSet) brokenErr() error {
	for _, p := range ts.places {
		if err := ts.broken[p]; err != nil {
			return err
		}
	}
	return nil
}

// knows reports whether a signing key of the ring made one of the
// signatures of d, by issuer key ID, as openpgp picks the key to verify
// with. A signature naming its issuer by fingerprint only is left to
// openpgp to judge.
func (ts *trustSet) knows(d *detached) bool {
	if d.anonym {
		return true
	}
	for _, id := range d.keyIDs {
		if len(ts.ring.KeysByIdUsage(id, packet.KeyFlagSign)) > 0 {
			return true
		}
	}
	return false
}

// TrustsAny reports whether any key, masked keys aside, is trusted for
// imageName: a root key or a key of a prefix covering it. A broken key file
// counts: it is trusted, only unusable, and verification says why. Image
// discovery asks this to decide whether to discover the publisher's keys
// before anything of the image is fetched.
func (ks *Keystore) TrustsAny(ctx context.Context, imageName string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := validateName("image name", imageName); err != nil {
		return false, err
	}
	for _, place := range append([]string{""}, ancestors(imageName)...) {
		keys, err := ks.placeKeys(place)
		if err != nil {
			return false, err
		}
		for _, k := range keys {
			if !k.masked {
				return true, nil
			}
		}
	}
	return false, nil
}

// StoreTrustedKey writes armoredKey, one public key (binary is accepted too), to the local
// directory so that it trusts the images below prefix, or every image when
// root is true (exactly one of the two must be given). The file is written
// atomically as <LocalDir>/trustedkeys/{root.d,prefix.d/<prefix>}/<fingerprint>
// with mode 0644, replacing a key or a mask already there. It returns the
// file's path.
//
// It fails with errdefs.ErrInvalidArgument for a bad prefix or anything but
// exactly one public key, and with errdefs.ErrFailedPrecondition for a
// revoked or expired key or when there is no local directory.
func (ks *Keystore) StoreTrustedKey(ctx context.Context, armoredKey []byte, prefix string, root bool) (path string, err error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := checkPlace(prefix, root); err != nil {
		return "", err
	}
	if ks.LocalDir == "" {
		return "", errdefs.FailedPrecondition("store trusted key: no local configuration directory")
	}
	k, err := parseKey(armoredKey)
	if err != nil {
		return "", err
	}
	if err := k.checkUsable(ks.clock()); err != nil {
		return "", fmt.Errorf("store trusted key: %w", err)
	}
	dir := placeDir(ks.LocalDir, prefix)
	if err := mkdirAll(dir); err != nil {
		return "", fmt.Errorf("store trusted key %s for %s: %w", FormatFingerprint(k.fingerprint), placeName(prefix), err)
	}
	path, err = writeAtomic(dir, k.fingerprint, k.armored)
	if err != nil {
		return "", fmt.Errorf("store trusted key %s for %s: %w", FormatFingerprint(k.fingerprint), placeName(prefix), err)
	}
	return path, nil
}

func checkPlace(prefix string, root bool) error {
	switch {
	case root && prefix != "":
		return errdefs.InvalidArgument("a key is trusted either for a prefix or as a root key, not both")
	case !root && prefix == "":
		return errdefs.InvalidArgument("a key needs a prefix to be trusted for, or must be a root key")
	case root:
		return nil
	}
	return ValidatePrefix(prefix)
}

// mkdirAll creates dir and its missing parents with mode 0755 whatever the
// umask, so that unprivileged readers of the keystore see it.
func mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errors.New("not a directory")}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // created meanwhile
		}
		return err
	}
	return os.Chmod(dir, 0o755) //nolint:gosec // G302: a directory, which needs x to be searched
}

// writeAtomic writes data to dir/name through a temporary file in dir and a
// rename, so readers see either the old file or the whole new one.
func writeAtomic(dir, name string, data []byte) (path string, err error) {
	path = filepath.Join(dir, name)
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return "", &fs.PathError{Op: "write", Path: path, Err: errors.New("is a directory")}
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*") // O_EXCL, mode 0600
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return "", err
	}
	if err = f.Chmod(0o644); err != nil {
		return "", err
	}
	if err = f.Sync(); err != nil {
		return "", err
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	if err = os.Rename(tmp, path); err != nil {
		return "", err
	}
	// Persist the rename; a failure here leaves a correct file behind.
	if d, derr := os.Open(dir); derr == nil { //nolint:gosec // G304: the keystore's own directory
		_ = d.Sync()
		_ = d.Close()
	}
	return path, nil
}

// List returns every trusted key of both directories, root keys first, then
// by prefix and fingerprint. A system key overridden by a local file is
// listed once, as local; a system key masked by an empty local file is
// listed with Masked set. Prefix directories that are not valid image names
// are skipped, as lookups never reach them.
func (ks *Keystore) List(ctx context.Context) ([]TrustedKey, error) {
	prefixes, err := ks.prefixes()
	if err != nil {
		return nil, err
	}
	var out []TrustedKey
	for _, prefix := range append([]string{""}, prefixes...) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		keys, err := ks.placeKeys(prefix)
		if err != nil {
			return nil, err
		}
		for _, sk := range keys {
			tk := TrustedKey{
				Prefix:      sk.prefix,
				Root:        sk.prefix == "",
				Fingerprint: sk.fingerprint,
				Path:        sk.path,
				Source:      sk.source,
				Masked:      sk.masked,
			}
			// A masked key is unused, so a broken one does not stop the
			// listing; it is shown without user IDs.
			k, err := load(sk)
			switch {
			case err == nil:
				tk.UserIDs = k.userIDs()
			case !sk.masked:
				return nil, err
			}
			out = append(out, tk)
		}
	}
	return out, nil
}

// prefixes returns the sorted prefixes that have a directory under
// prefix.d in either configuration directory.
func (ks *Keystore) prefixes() ([]string, error) {
	set := make(map[string]bool)
	for _, cfg := range []string{ks.SystemDir, ks.LocalDir} {
		if cfg == "" {
			continue
		}
		base := filepath.Join(cfg, trustedKeysDir, prefixDir)
		err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == base && errors.Is(err, fs.ErrNotExist) {
					return fs.SkipAll
				}
				return err
			}
			if !d.IsDir() || p == base {
				return nil
			}
			rel, err := filepath.Rel(base, p)
			if err != nil {
				return err
			}
			if prefix := filepath.ToSlash(rel); validateName("prefix", prefix) == nil {
				set[prefix] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list trusted key prefixes: %w", err)
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// Remove stops trusting the key with the given fingerprint (any case, spaces
// allowed) at prefix, or at the root keys when prefix is empty. A local key
// file is deleted; when a system key of that fingerprint is at the same
// place, an empty local file is written instead to mask it, so that removing
// never brings a system key back. It fails with errdefs.ErrNotFound when no
// such key is trusted there.
func (ks *Keystore) Remove(ctx context.Context, fingerprint string, prefix string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fpr, err := normalizeFingerprint(fingerprint)
	if err != nil {
		return err
	}
	if prefix != "" {
		if err := ValidatePrefix(prefix); err != nil {
			return err
		}
	}
	if ks.LocalDir == "" {
		return errdefs.FailedPrecondition("remove trusted key: no local configuration directory")
	}
	keys, err := ks.placeKeys(prefix)
	if err != nil {
		return err
	}
	var found *storedKey
	for i := range keys {
		if keys[i].fingerprint == fpr && !keys[i].masked {
			found = &keys[i]
		}
	}
	if found == nil {
		return errdefs.NotFound("remove trusted key: key %s is not trusted for %s", FormatFingerprint(fpr), placeName(prefix))
	}
	system, err := readPlace(ks.SystemDir, prefix)
	if err != nil {
		return err
	}
	dir := placeDir(ks.LocalDir, prefix)
	if s, ok := system[fpr]; ok && !s.empty {
		if err := mkdirAll(dir); err != nil {
			return fmt.Errorf("mask system key %s for %s: %w", FormatFingerprint(fpr), placeName(prefix), err)
		}
		if _, err := writeAtomic(dir, fpr, nil); err != nil {
			return fmt.Errorf("mask system key %s for %s: %w", FormatFingerprint(fpr), placeName(prefix), err)
		}
		return nil
	}
	if err := os.Remove(found.path); err != nil {
		return fmt.Errorf("remove trusted key %s for %s: %w", FormatFingerprint(fpr), placeName(prefix), err)
	}
	// Drop the prefix directories left empty; the first non-empty one stops it.
	if prefix != "" {
		top := filepath.Join(ks.LocalDir, trustedKeysDir, prefixDir)
		for d := dir; d != top && strings.HasPrefix(d, top); d = filepath.Dir(d) {
			if os.Remove(d) != nil {
				break
			}
		}
	}
	return nil
}
