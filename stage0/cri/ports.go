package cri

import (
	"fmt"
	"net"
	"strconv"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/networking/portfwd"
)

// criProtocols are the CRI's protocols as --publish writes them.
var criProtocols = map[runtimeapi.Protocol]string{
	runtimeapi.Protocol_TCP:  "tcp",
	runtimeapi.Protocol_UDP:  "udp",
	runtimeapi.Protocol_SCTP: "sctp",
}

// publishArgs are the --publish flags of nscn app sandbox for a
// sandbox's port mappings: each mapping with a host port forwards it (on
// host_ip, or every address) to the container port at the pod's address,
// through the CNI portmap plugin, for the pod's life; gc removes the
// forward with the pod's network. A mapping without a host port forwards
// nothing (the container port is reached at the pod's address), and on
// the host's network there is nothing to forward: containerd does the
// same.
func publishArgs(mappings []*runtimeapi.PortMapping, hostNetwork bool) ([]string, error) {
	var out []string
	for i, m := range mappings {
		proto, ok := criProtocols[m.GetProtocol()]
		if !ok {
			return nil, errdefs.InvalidArgument("port mapping %d: unknown protocol %v", i, m.GetProtocol())
		}
		cp, hp := m.GetContainerPort(), m.GetHostPort()
		if cp < 1 || cp > 65535 {
			return nil, errdefs.InvalidArgument("port mapping %d: container port %d is not in 1-65535", i, cp)
		}
		if hp < 0 || hp > 65535 {
			return nil, errdefs.InvalidArgument("port mapping %d: host port %d is not in 1-65535", i, hp)
		}
		if hp == 0 || hostNetwork {
			continue
		}
		host := strconv.Itoa(int(hp))
		if ip := m.GetHostIp(); ip != "" {
			a := net.ParseIP(ip)
			if a == nil {
				return nil, errdefs.InvalidArgument("port mapping %d: host IP %q is not an IP address", i, ip)
			}
			if !a.IsUnspecified() {
				host = net.JoinHostPort(a.String(), host)
			}
		}
		v := fmt.Sprintf("%s:%d/%s", host, cp, proto)
		if _, err := portfwd.ParsePublish(v); err != nil {
			return nil, fmt.Errorf("port mapping %d: %w", i, err)
		}
		out = append(out, "--publish="+v)
	}
	return out, nil
}
