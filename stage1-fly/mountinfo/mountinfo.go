// Package mountinfo parses /proc/<pid>/mountinfo (proc(5)), which the
// stage1-fly gc entrypoint and tests read to find mounts left under a pod
// directory. It runs in stage1, needs no privileges, and does no I/O beyond
// the reader it is given.
package mountinfo

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxSize bounds how much is read; a host with a million mounts is broken
// anyway.
const maxSize = 64 << 20

// Info is one mount: one line of mountinfo.
type Info struct {
	ID         int
	Parent     int
	Root       string // root of the mount within its filesystem
	MountPoint string // relative to the reader's root
	Options    string // per-mount options
	FSType     string
	Source     string
}

// Parse reads every line of a mountinfo file. Paths are unescaped (the
// kernel writes space, tab, newline and backslash as \ooo octal).
func Parse(r io.Reader) ([]Info, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("read mountinfo: larger than %d bytes", maxSize)
	}
	var infos []Info
	n := 0
	for line := range strings.Lines(string(data)) {
		n++
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		info, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("parse mountinfo line %d: %w", n, err)
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// parseLine splits "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw".
func parseLine(line string) (Info, error) {
	f := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 6 || sep < 0 || len(f) < sep+3 {
		return Info{}, fmt.Errorf("malformed line %q", line)
	}
	id, err := strconv.Atoi(f[0])
	if err != nil || id < 0 {
		return Info{}, fmt.Errorf("malformed mount id %q", f[0])
	}
	parent, err := strconv.Atoi(f[1])
	if err != nil || parent < 0 {
		return Info{}, fmt.Errorf("malformed parent id %q", f[1])
	}
	root, err := unescape(f[3])
	if err != nil {
		return Info{}, err
	}
	mp, err := unescape(f[4])
	if err != nil {
		return Info{}, err
	}
	src, err := unescape(f[sep+2])
	if err != nil {
		return Info{}, err
	}
	return Info{
		ID:         id,
		Parent:     parent,
		Root:       root,
		MountPoint: mp,
		Options:    f[5],
		FSType:     f[sep+1],
		Source:     src,
	}, nil
}

// unescape undoes the kernel's \ooo escaping of a path field.
func unescape(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty path field")
	}
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 >= len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

// Under reports whether path is dir or inside it, comparing cleaned
// absolute paths component by component.
func Under(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}
