// Package netflag parses the --net value of nscn run: which networks a
// pod joins, with their CNI_ARGS. It is pure, so that stage0 can refuse a
// bad value before any pod exists and the stage1 (through package
// networking) reads it with the same rules. It runs in stage0 and stage1
// and needs no privileges.
package netflag

import (
	"regexp"
	"strings"
	"unicode"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// ValidName reports whether s is usable as a CNI network name.
func ValidName(s string) bool { return len(s) <= 128 && nameRE.MatchString(s) }

// Net is one network asked for with --net: a name and the CNI_ARGS pairs
// given after a colon (name:K=V;K2=V2).
type Net struct {
	Name string
	Args [][2]string
}

// Nets is a parsed --net value. It is either exactly one of host or none,
// or a list of CNI networks, each interface named by its position (eth0,
// eth1, …).
type Nets []Net

// Host reports whether the pod uses the host's network.
func (n Nets) Host() bool { return len(n) == 1 && n[0].Name == stage1abi.NetHost }

// None reports whether the pod gets a namespace with only lo.
func (n Nets) None() bool { return len(n) == 1 && n[0].Name == stage1abi.NetNone }

// String formats n in the --net syntax; Parse(n.String()) == n.
func (n Nets) String() string {
	var b strings.Builder
	for i, net := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(net.Name)
		for j, kv := range net.Args {
			if j == 0 {
				b.WriteByte(':')
			} else {
				b.WriteByte(';')
			}
			b.WriteString(kv[0] + "=" + kv[1])
		}
	}
	return b.String()
}

// Parse reads the --net value as rkt does: a comma-separated list of
// name[:CNI_ARGS], CNI_ARGS being K=V pairs separated by semicolons. An
// empty value means "default". host and none stand alone and take no
// arguments; a network may not be named twice. Errors are
// ErrInvalidArgument. Whether a name exists is checked by Setup.
func Parse(s string) (Nets, error) {
	if s == "" {
		return Nets{{Name: stage1abi.NetDefault}}, nil
	}
	var nets Nets
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		name, args, hasArgs := strings.Cut(item, ":")
		if !ValidName(name) {
			return nil, errdefs.InvalidArgument("--net %q: invalid network name %q", s, name)
		}
		if seen[name] {
			return nil, errdefs.InvalidArgument("--net %q: network %q is named twice", s, name)
		}
		seen[name] = true
		n := Net{Name: name}
		if hasArgs {
			if name == stage1abi.NetHost || name == stage1abi.NetNone {
				return nil, errdefs.InvalidArgument("--net %q: %s takes no arguments", s, name)
			}
			keys := map[string]bool{}
			for kv := range strings.SplitSeq(args, ";") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" || strings.ContainsAny(k, "=") || strings.ContainsFunc(k+v, unicode.IsControl) {
					return nil, errdefs.InvalidArgument("--net %q: argument %q of %s is not KEY=VALUE", s, kv, name)
				}
				if keys[k] {
					return nil, errdefs.InvalidArgument("--net %q: argument %q of %s is given twice", s, k, name)
				}
				keys[k] = true
				n.Args = append(n.Args, [2]string{k, v})
			}
		}
		nets = append(nets, n)
	}
	if len(nets) > 1 && (seen[stage1abi.NetHost] || seen[stage1abi.NetNone]) {
		return nil, errdefs.InvalidArgument("--net %q: host and none cannot be combined with other networks", s)
	}
	return nets, nil
}
