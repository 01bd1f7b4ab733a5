// Package passwd parses the /etc/passwd and /etc/group files of an app's
// root filesystem, so that stage1-fly can turn the user and group names of
// an appc app into numeric ids without consulting the host's databases (see
// the "user, group" fields in the appc spec, spec/aci.md).
//
// The files come from an untrusted image: parsing never fails on a
// malformed line, it skips it, the way the C library does. Lookups return
// the first matching entry. The package does no I/O beyond reading the
// io.Reader it is given, runs in stage1 and needs no privileges.
package passwd

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxFileSize bounds how much of a passwd or group file is read. Real
// databases are far smaller; the limit keeps a hostile image from making
// stage1 buffer an endless file.
const MaxFileSize = 16 << 20

// ErrTooLarge is returned for a file larger than MaxFileSize.
var ErrTooLarge = errors.New("file larger than 16 MiB")

// User is one line of /etc/passwd.
type User struct {
	Name  string
	UID   uint32
	GID   uint32
	Home  string
	Shell string
}

// Group is one line of /etc/group.
type Group struct {
	Name    string
	GID     uint32
	Members []string
}

// ParseUsers reads passwd(5) lines: name:password:uid:gid:gecos:home:shell.
// Comments, blank lines, NIS compat entries (+, -) and lines that do not
// have seven fields with numeric ids are skipped.
func ParseUsers(r io.Reader) ([]User, error) {
	var users []User
	err := eachLine(r, func(line string) {
		f := strings.Split(line, ":")
		if len(f) != 7 || !validName(f[0]) {
			return
		}
		uid, ok := parseID(f[2])
		if !ok {
			return
		}
		gid, ok := parseID(f[3])
		if !ok {
			return
		}
		users = append(users, User{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]})
	})
	return users, err
}

// ParseGroups reads group(5) lines: name:password:gid:member,member. Lines
// that are not four fields with a numeric gid are skipped.
func ParseGroups(r io.Reader) ([]Group, error) {
	var groups []Group
	err := eachLine(r, func(line string) {
		f := strings.Split(line, ":")
		if len(f) != 4 || !validName(f[0]) {
			return
		}
		gid, ok := parseID(f[2])
		if !ok {
			return
		}
		g := Group{Name: f[0], GID: gid}
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				g.Members = append(g.Members, m)
			}
		}
		groups = append(groups, g)
	})
	return groups, err
}

// LookupUser returns the first user named name.
func LookupUser(users []User, name string) (User, bool) {
	for _, u := range users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// LookupGroup returns the first group named name.
func LookupGroup(groups []Group, name string) (Group, bool) {
	for _, g := range groups {
		if g.Name == name {
			return g, true
		}
	}
	return Group{}, false
}

// eachLine calls fn with every line that is not blank, a comment or an NIS
// compat entry, stripped of its line ending.
func eachLine(r io.Reader, fn func(string)) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("read database: %w", err)
	}
	if len(data) > MaxFileSize {
		return ErrTooLarge
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fn(line)
	}
	return nil
}

// validName rejects empty names and names with whitespace, which no user
// or group tool creates.
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\n\r\x00")
}

// parseID accepts a decimal id below 2^32-1; (uid_t)-1 is reserved.
func parseID(s string) (uint32, bool) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}
