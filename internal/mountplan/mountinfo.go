package mountplan

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxMountInfoLine bounds one line of mountinfo; the kernel limits paths to
// PATH_MAX, and escaping at most quadruples them.
const maxMountInfoLine = 1 << 20

// MountInfo is one line of /proc/<pid>/mountinfo, described in proc(5)
// (https://man7.org/linux/man-pages/man5/proc_pid_mountinfo.5.html):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//	(1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//
// Path fields are unescaped: the kernel writes space, tab, newline and
// backslash as \040, \011, \012 and \134.
type MountInfo struct {
	ID           int      // (1) mount ID
	ParentID     int      // (2) parent mount ID
	Major, Minor int      // (3) st_dev of files on the filesystem
	Root         string   // (4) root of the mount within the filesystem
	MountPoint   string   // (5) relative to the process's root
	Options      string   // (6) per-mount options
	Optional     []string // (7) tag[:value] fields, such as shared:1
	FSType       string   // (9)
	Source       string   // (10) filesystem-specific, "none" when empty
	SuperOptions string   // (11) per-superblock options
}

// ParseMountInfo reads every line of a mountinfo file. It does no I/O
// beyond r.
func ParseMountInfo(r io.Reader) ([]MountInfo, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxMountInfoLine)
	var out []MountInfo
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		mi, err := parseMountInfoLine(line)
		if err != nil {
			return nil, fmt.Errorf("parse mountinfo line %d: %w", n, err)
		}
		out = append(out, mi)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

func parseMountInfoLine(line string) (MountInfo, error) {
	f := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 {
		return MountInfo{}, fmt.Errorf("no \" - \" separator in %q", line)
	}
	if len(f) != sep+4 {
		return MountInfo{}, fmt.Errorf("want 3 fields after the separator, got %d in %q", len(f)-sep-1, line)
	}
	var mi MountInfo
	var err error
	if mi.ID, err = parseID("mount id", f[0]); err != nil {
		return MountInfo{}, err
	}
	if mi.ParentID, err = parseID("parent id", f[1]); err != nil {
		return MountInfo{}, err
	}
	maj, mnr, ok := strings.Cut(f[2], ":")
	if !ok {
		return MountInfo{}, fmt.Errorf("device %q is not major:minor", f[2])
	}
	if mi.Major, err = parseID("major", maj); err != nil {
		return MountInfo{}, err
	}
	if mi.Minor, err = parseID("minor", mnr); err != nil {
		return MountInfo{}, err
	}
	if mi.Root, err = unescapeField("root", f[3]); err != nil {
		return MountInfo{}, err
	}
	if mi.MountPoint, err = unescapeField("mount point", f[4]); err != nil {
		return MountInfo{}, err
	}
	mi.Options = f[5]
	if sep > 6 {
		mi.Optional = f[6:sep]
	}
	if mi.FSType, err = unescapeField("filesystem type", f[sep+1]); err != nil {
		return MountInfo{}, err
	}
	// The source may legitimately be empty.
	if f[sep+2] != "" {
		if mi.Source, err = unescapeField("source", f[sep+2]); err != nil {
			return MountInfo{}, err
		}
	}
	mi.SuperOptions = f[sep+3]
	return mi, nil
}

func parseID(what, s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s %q is not a decimal number", what, s)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", what, s, err)
	}
	return n, nil
}

// unescapeField undoes the kernel's \ooo escapes. A backslash not followed
// by three octal digits is an error: the kernel never writes one.
func unescapeField(what, s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty %s", what)
	}
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("%s %q: truncated escape", what, s)
		}
		v := 0
		for _, d := range []byte(s[i+1 : i+4]) {
			if d < '0' || d > '7' {
				return "", fmt.Errorf("%s %q: bad escape", what, s)
			}
			v = v*8 + int(d-'0')
		}
		if v > 0xff {
			return "", fmt.Errorf("%s %q: escape out of range", what, s)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}
