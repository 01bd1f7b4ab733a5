package abiargs

import (
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// DNSConf is the parsed --dns-conf-mode: how the app's /etc/resolv.conf
// and /etc/hosts are provided. Each field is one of the stage1abi DNSMode*
// values.
type DNSConf struct {
	Resolv string `json:"resolv"`
	Hosts  string `json:"hosts"`
}

// ParseDNSConfMode parses "resolv=MODE,hosts=MODE". Either key may be
// missing, and an empty string means both are default.
func ParseDNSConfMode(s string) (DNSConf, error) {
	c := DNSConf{Resolv: stage1abi.DNSModeDefault, Hosts: stage1abi.DNSModeDefault}
	if s == "" {
		return c, nil
	}
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(s, ",") {
		key, mode, ok := strings.Cut(pair, "=")
		if !ok {
			return DNSConf{}, errdefs.InvalidArgument("flag --%s: %q is not key=mode", stage1abi.FlagDNSConfMode, pair)
		}
		if seen[key] {
			return DNSConf{}, errdefs.InvalidArgument("flag --%s: key %q given twice", stage1abi.FlagDNSConfMode, key)
		}
		seen[key] = true
		switch mode {
		case stage1abi.DNSModeDefault, stage1abi.DNSModeHost, stage1abi.DNSModeStage0, stage1abi.DNSModeNone:
		default:
			return DNSConf{}, errdefs.InvalidArgument("flag --%s: unknown mode %q for %s", stage1abi.FlagDNSConfMode, mode, key)
		}
		switch key {
		case stage1abi.DNSConfResolv:
			c.Resolv = mode
		case stage1abi.DNSConfHosts:
			c.Hosts = mode
		default:
			return DNSConf{}, errdefs.InvalidArgument("flag --%s: unknown key %q (want %s or %s)",
				stage1abi.FlagDNSConfMode, key, stage1abi.DNSConfResolv, stage1abi.DNSConfHosts)
		}
	}
	return c, nil
}
