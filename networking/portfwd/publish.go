package portfwd

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

// ParsePublish reads one --publish value, [HOSTIP:]HOSTPORT:PODPORT[/PROTO]
// (PROTO tcp, the default, udp or sctp; an IPv6 HOSTIP in brackets): a
// host port forwarded to a port of the pod's address whatever app listens
// there, so that a pod with no app yet (nscn app sandbox, a CRI sandbox)
// can have its ports. It is an appc exposed port with its podPort set,
// named publish-PROTO-HOSTPORT. Errors are ErrInvalidArgument.
func ParsePublish(s string) (types.ExposedPort, error) {
	bad := func(format string, a ...any) (types.ExposedPort, error) {
		return types.ExposedPort{}, errdefs.InvalidArgument("publish %q: "+format, append([]any{s}, a...)...)
	}
	rest, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return bad("protocol %q is not tcp, udp or sctp", proto)
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return bad("want [HOSTIP:]HOSTPORT:PODPORT[/PROTO]")
	}
	podPort, err := portNumber(rest[i+1:])
	if err != nil {
		return bad("pod port: %v", err)
	}
	rest = rest[:i]
	var ip net.IP
	if j := strings.LastIndex(rest, ":"); j >= 0 {
		host := rest[:j]
		rest = rest[j+1:]
		if !strings.HasPrefix(host, "[") || !strings.HasSuffix(host, "]") {
			if strings.Contains(host, ":") {
				return bad("write an IPv6 host address in brackets")
			}
		} else {
			host = host[1 : len(host)-1]
			if !strings.Contains(host, ":") {
				return bad("brackets are for IPv6 addresses")
			}
		}
		if ip = net.ParseIP(host); ip == nil || strings.Contains(host, "%") {
			return bad("%q is not an IP address", host)
		}
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
	}
	hostPort, err := portNumber(rest)
	if err != nil {
		return bad("host port: %v", err)
	}
	name := fmt.Sprintf("publish-%s-%d", proto, hostPort)
	return types.ExposedPort{
		Name: *types.MustACName(name), HostPort: hostPort, HostIP: ip,
		PodPort: &types.Port{Name: *types.MustACName(name), Protocol: proto, Port: podPort},
	}, nil
}

// FormatPublish is the inverse of ParsePublish, for an exposed port with
// its podPort set.
func FormatPublish(ep types.ExposedPort) string {
	hp := strconv.FormatUint(uint64(ep.HostPort), 10)
	if ep.HostIP != nil {
		hp = net.JoinHostPort(ep.HostIP.String(), hp)
	}
	proto, port := "tcp", uint(0)
	if ep.PodPort != nil {
		proto, port = ep.PodPort.Protocol, ep.PodPort.Port
	}
	return fmt.Sprintf("%s:%d/%s", hp, port, proto)
}

func portNumber(s string) (uint, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("%q is not in 1-65535", s)
	}
	return uint(p), nil
}
