// Package resolvconf writes the /etc/resolv.conf and /etc/hosts files a
// pod's apps see: from stage0's --dns* and --hosts-entry flags, and from a
// CNI result's DNS section in stage1. It only formats and checks text; it
// touches no file and needs no privilege. The formats are resolv.conf(5)
// and hosts(5).
package resolvconf

import (
	"net/netip"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Config is the content of a resolv.conf.
type Config struct {
	Nameservers []string
	Domain      string
	Search      []string
	Options     []string
}

// Empty reports whether c would give an empty file.
func (c Config) Empty() bool {
	return len(c.Nameservers) == 0 && c.Domain == "" && len(c.Search) == 0 && len(c.Options) == 0
}

// Check refuses values that would not survive as one resolv.conf word:
// nameservers must be IP addresses, and no value may contain white space
// or a comment character. Errors are ErrInvalidArgument.
func (c Config) Check() error {
	for _, ns := range c.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			return errdefs.InvalidArgument("nameserver %q is not an IP address", ns)
		}
	}
	for _, group := range [][]string{{c.Domain}, c.Search, c.Options} {
		for _, v := range group {
			if strings.ContainsAny(v, " \t\r\n#;\x00") {
				return errdefs.InvalidArgument("resolv.conf value %q contains white space or a comment character", v)
			}
		}
	}
	return nil
}

// Format returns c as a resolv.conf. The caller checked it (Check).
func (c Config) Format(comment string) []byte {
	var b strings.Builder
	if comment != "" {
		b.WriteString("# " + comment + "\n")
	}
	for _, ns := range c.Nameservers {
		b.WriteString("nameserver " + ns + "\n")
	}
	if c.Domain != "" {
		b.WriteString("domain " + c.Domain + "\n")
	}
	if len(c.Search) > 0 {
		b.WriteString("search " + strings.Join(c.Search, " ") + "\n")
	}
	if len(c.Options) > 0 {
		b.WriteString("options " + strings.Join(c.Options, " ") + "\n")
	}
	return []byte(b.String())
}

// HostsEntry is one line of /etc/hosts: an address and its names.
type HostsEntry struct {
	IP    string
	Names []string
}

// ParseHostsEntry parses IP=NAME[,NAME…], the --hosts-entry syntax.
// Errors are ErrInvalidArgument.
func ParseHostsEntry(s string) (HostsEntry, error) {
	ip, names, ok := strings.Cut(s, "=")
	if !ok || names == "" {
		return HostsEntry{}, errdefs.InvalidArgument("hosts entry %q is not IP=NAME", s)
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return HostsEntry{}, errdefs.InvalidArgument("hosts entry %q: %q is not an IP address", s, ip)
	}
	e := HostsEntry{IP: ip}
	for n := range strings.SplitSeq(names, ",") {
		if !validHostname(n) {
			return HostsEntry{}, errdefs.InvalidArgument("hosts entry %q: %q is not a host name", s, n)
		}
		e.Names = append(e.Names, n)
	}
	return e, nil
}

// validHostname accepts letters, digits, '-', '_' and '.', not starting with
// '-' or '.', up to 253 characters: what a hosts file line can carry.
func validHostname(n string) bool {
	if n == "" || len(n) > 253 || n[0] == '-' || n[0] == '.' {
		return false
	}
	for _, r := range n {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// Hosts returns a hosts file: the loopback names first (as every Linux
// hosts file has them), then entries in order. Names repeated on several
// lines stay; the resolver takes the first match.
func Hosts(comment string, entries []HostsEntry) []byte {
	var b strings.Builder
	if comment != "" {
		b.WriteString("# " + comment + "\n")
	}
	b.WriteString("127.0.0.1\tlocalhost localhost.localdomain\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, e := range entries {
		b.WriteString(e.IP + "\t" + strings.Join(e.Names, " ") + "\n")
	}
	return []byte(b.String())
}
