package cli

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/resolvconf"
	"github.com/nosecone/nscn/networking/portfwd"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/stage1"
)

// dnsFlags are run's --dns, --dns-search, --dns-opt, --dns-domain and
// --hosts-entry, as given.
type dnsFlags struct {
	DNS, Search, Opts, HostsEntries []string
	Domain                          string
	ConfMode                        string // --dns-conf-mode
}

func (f dnsFlags) resolvGiven() bool {
	return len(f.DNS) > 0 || len(f.Search) > 0 || len(f.Opts) > 0 || f.Domain != ""
}

// podDNS is what stage0 hands the stage1 for the apps' /etc/resolv.conf
// and /etc/hosts, the way rkt did: the --dns-conf-mode value, and the
// files of the stage0 mode (stage1abi.Stage0ResolvConfRel, Stage0HostsRel).
type podDNS struct {
	ConfMode      string
	Resolv, Hosts []byte
}

// plan checks the flags and computes the mode and files:
//
//   - --dns=host or --dns=none alone: resolv=host or resolv=none;
//   - --dns=IP (repeatable), --dns-search, --dns-opt, --dns-domain: a
//     resolv.conf that stage0 writes, resolv=stage0;
//   - --hosts-entry=host alone: hosts=host;
//   - --hosts-entry=IP=NAME (repeatable): a hosts file (with the loopback
//     names) that stage0 writes, hosts=stage0.
//
// --dns-conf-mode, the raw form, cannot be combined with them. Errors are
// usage errors.
func (f dnsFlags) plan() (podDNS, error) {
	if err := stage1.CheckDNSConfMode(f.ConfMode); err != nil {
		return podDNS{}, err
	}
	if f.ConfMode != "" && (f.resolvGiven() || len(f.HostsEntries) > 0) {
		return podDNS{}, usageErrorf("--dns-conf-mode cannot be combined with --dns, --dns-search, --dns-opt, --dns-domain or --hosts-entry")
	}
	var out podDNS
	var modes []string
	if f.resolvGiven() {
		c := resolvconf.Config{Domain: f.Domain, Search: f.Search, Options: f.Opts}
		for _, d := range f.DNS {
			switch d {
			case stage1abi.DNSModeHost, stage1abi.DNSModeNone:
				if len(f.DNS) > 1 || len(f.Search) > 0 || len(f.Opts) > 0 || f.Domain != "" {
					return podDNS{}, usageErrorf("--dns=%s stands alone (no other --dns, --dns-search, --dns-opt or --dns-domain)", d)
				}
				modes = append(modes, stage1abi.DNSConfResolv+"="+d)
				continue
			}
			if _, err := netip.ParseAddr(d); err != nil {
				return podDNS{}, usageErrorf("--dns %q: want an IP address, host or none", d)
			}
			c.Nameservers = append(c.Nameservers, d)
		}
		if len(modes) == 0 {
			if err := c.Check(); err != nil {
				return podDNS{}, usageErrorf("--dns flags: %v", err)
			}
			out.Resolv = c.Format("written by nscn from --dns flags")
			modes = append(modes, stage1abi.DNSConfResolv+"="+stage1abi.DNSModeStage0)
		}
	}
	if len(f.HostsEntries) > 0 {
		var entries []resolvconf.HostsEntry
		for _, h := range f.HostsEntries {
			if h == stage1abi.DNSModeHost {
				// Given twice it still means the host's file, as in
				// rkt; beside an IP=NAME entry it means nothing.
				if slices.ContainsFunc(f.HostsEntries, func(o string) bool { return o != stage1abi.DNSModeHost }) {
					return podDNS{}, usageErrorf("--hosts-entry=host stands alone (no IP=NAME entry beside it)")
				}
				modes = append(modes, stage1abi.DNSConfHosts+"="+stage1abi.DNSModeHost)
				break
			}
			e, err := resolvconf.ParseHostsEntry(h)
			if err != nil {
				return podDNS{}, usageErrorf("--hosts-entry: %v", err)
			}
			entries = append(entries, e)
		}
		if entries != nil {
			out.Hosts = resolvconf.Hosts("written by nscn from --hosts-entry", entries)
			modes = append(modes, stage1abi.DNSConfHosts+"="+stage1abi.DNSModeStage0)
		}
	}
	out.ConfMode = strings.Join(modes, ",")
	if f.ConfMode != "" {
		out.ConfMode = f.ConfMode
	}
	return out, nil
}

// write puts the stage0-mode files into the pod's stage1 rootfs, where
// the stage1 reads them.
func (d podDNS) write(podDir string) error {
	for _, f := range []struct {
		rel  string
		data []byte
	}{{stage1abi.Stage0ResolvConfRel, d.Resolv}, {stage1abi.Stage0HostsRel, d.Hosts}} {
		if f.data == nil {
			continue
		}
		dir := filepath.Join(podDir, filepath.Dir(f.rel))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := atomicfile.Write(dir, filepath.Base(f.rel), f.data); err != nil {
			return err
		}
	}
	return nil
}

// parsePorts parses the --port values (NAME:[HOSTIP:]HOSTPORT).
func parsePorts(vals []string) ([]types.ExposedPort, error) {
	var out []types.ExposedPort
	for _, v := range vals {
		ep, err := portfwd.Parse(v)
		if err != nil {
			return nil, usageErrorf("--port: %v", err)
		}
		out = append(out, ep)
	}
	return out, nil
}
