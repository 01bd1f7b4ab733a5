package appspec

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/passwd"
)

// Creds are the numeric credentials an app process runs with.
type Creds struct {
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups, exactly the app's supplementaryGIDs
}

// Paths of the app's user and group databases, relative to its rootfs.
const (
	passwdFile = "etc/passwd"
	groupFile  = "etc/group"
)

// ResolveCreds turns the app's user, group and supplementaryGIDs into ids,
// as spec/aci.md prescribes:
//
//   - a value starting with "/" names a file in the rootfs whose owner
//     (user) or group (group) is used;
//   - otherwise the name is looked up in the rootfs's own /etc/passwd or
//     /etc/group — never the host's;
//   - failing that, an all-digit value is the id itself.
//
// root is the app's rootfs. A missing /etc/passwd or /etc/group counts as
// an empty one; any other read error fails. The user's memberships in
// /etc/group are not added to Groups: only supplementaryGIDs are.
func ResolveCreds(root fs.FS, user, group string, supplementaryGIDs []int) (Creds, error) {
	var c Creds
	var err error
	if c.UID, err = resolveID(root, user, "user", passwdFile, lookupUser); err != nil {
		return Creds{}, err
	}
	if c.GID, err = resolveID(root, group, "group", groupFile, lookupGroup); err != nil {
		return Creds{}, err
	}
	for _, g := range supplementaryGIDs {
		if g < 0 || g >= 1<<32-1 {
			return Creds{}, errdefs.InvalidArgument("supplementary gid %d is out of range", g)
		}
		c.Groups = append(c.Groups, uint32(g))
	}
	return c, nil
}

func lookupUser(root fs.FS, name string) (uint32, bool, error) {
	f, err := root.Open(passwdFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("open /%s: %w", passwdFile, err)
	}
	defer func() { _ = f.Close() }()
	users, err := passwd.ParseUsers(f)
	if err != nil {
		return 0, false, fmt.Errorf("read /%s: %w", passwdFile, err)
	}
	u, ok := passwd.LookupUser(users, name)
	return u.UID, ok, nil
}

func lookupGroup(root fs.FS, name string) (uint32, bool, error) {
	f, err := root.Open(groupFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("open /%s: %w", groupFile, err)
	}
	defer func() { _ = f.Close() }()
	groups, err := passwd.ParseGroups(f)
	if err != nil {
		return 0, false, fmt.Errorf("read /%s: %w", groupFile, err)
	}
	g, ok := passwd.LookupGroup(groups, name)
	return g.GID, ok, nil
}

// resolveID resolves one user or group value; kind is "user" or "group".
func resolveID(root fs.FS, value, kind, db string, lookup func(fs.FS, string) (uint32, bool, error)) (uint32, error) {
	if value == "" {
		return 0, errdefs.InvalidArgument("app has no %s", kind)
	}
	if strings.HasPrefix(value, "/") {
		uid, gid, err := owner(root, value)
		if err != nil {
			return 0, fmt.Errorf("resolve %s %q from the owner of a file: %w", kind, value, err)
		}
		if kind == "user" {
			return uid, nil
		}
		return gid, nil
	}
	id, ok, err := lookup(root, value)
	if err != nil {
		return 0, fmt.Errorf("resolve %s %q: %w", kind, value, err)
	}
	if ok {
		return id, nil
	}
	if n, err := strconv.ParseUint(value, 10, 32); err == nil && n < 1<<32-1 {
		return uint32(n), nil
	}
	return 0, errdefs.NotFound("%s %q is neither in the app's /%s nor a numeric id", kind, value, db)
}

// owner returns the uid and gid owning the file at the in-root path p,
// following symlinks within the root.
func owner(root fs.FS, p string) (uint32, uint32, error) {
	rel := strings.TrimLeft(p, "/")
	if rel == "" {
		rel = "."
	}
	fi, err := fs.Stat(root, rel)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("stat %s: no owner information", p)
	}
	return st.Uid, st.Gid, nil
}
