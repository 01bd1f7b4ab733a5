// Package podnet formats the files a pod with a network namespace of its
// own gets from its CNI results: the hosts file and resolv.conf run
// generates (NetFiles), and the host's address the pod reaches the
// metadata service at (Gateway). It runs on the host side of the run
// entrypoints of the flavors that attach CNI networks, never inside a pod:
// package sdpod, which the helpers inside the pod import, stays free of
// the CNI libraries this one needs (a smaller, faster-starting app helper).
package podnet

import (
	"net"

	"github.com/nosecone/nscn/internal/resolvconf"
	"github.com/nosecone/nscn/networking/netrecord"
)

// NetFiles returns the hosts file and the resolv.conf that run generates
// for a pod with a network namespace of its own (nets from
// networking.Setup; empty for --net=none).
//
// hosts maps hostname to the pod's first address (to nothing but the
// loopback names for --net=none); the apps get it when their image has no
// /etc/hosts. resolv comes from the DNS section of the first CNI result
// that names a nameserver, as rkt took it, and is nil when none does; it
// replaces the image's /etc/resolv.conf. Both give way to
// --dns-conf-mode (stage0's --dns and --hosts-entry flags).
func NetFiles(hostname string, nets []netrecord.Attachment) (hosts, resolv []byte) {
	const comment = "written by stage1-nspawn for the pod's network"
	var entries []resolvconf.HostsEntry
	for _, a := range nets {
		if len(a.IPs) > 0 {
			entries = append(entries, resolvconf.HostsEntry{IP: a.IPs[0].IP.String(), Names: []string{hostname}})
			break
		}
	}
	if len(entries) == 0 {
		entries = append(entries, resolvconf.HostsEntry{IP: "127.0.1.1", Names: []string{hostname}})
	}
	hosts = resolvconf.Hosts(comment, entries)
	for _, a := range nets {
		if a.Result == nil || len(a.Result.DNS.Nameservers) == 0 {
			continue
		}
		c := resolvconf.Config{
			Nameservers: a.Result.DNS.Nameservers,
			Domain:      a.Result.DNS.Domain,
			Search:      a.Result.DNS.Search,
			Options:     a.Result.DNS.Options,
		}
		// A plugin's result is not trusted to be well-formed: a value
		// that would break the file's syntax drops the whole section.
		if c.Check() != nil {
			continue
		}
		return hosts, c.Format(comment + " (DNS of network " + a.Name + ")")
	}
	return hosts, nil
}

// Gateway returns the gateway of the pod's interface on a network (the
// host's side of a ptp or bridge network), or nil.
func Gateway(a netrecord.Attachment) net.IP {
	if a.Result == nil {
		return nil
	}
	for _, ip := range a.Result.IPs {
		if ip.Gateway != nil {
			return ip.Gateway
		}
	}
	return nil
}
