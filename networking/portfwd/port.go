package portfwd

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Mapping is one forwarded port: HostIP:HostPort on the host to PodPort in
// the pod. It marshals to the CNI portMappings capability format.
type Mapping struct {
	Name     string `json:"-"` // the app port name, for messages
	HostIP   string `json:"hostIP,omitempty"`
	HostPort int    `json:"hostPort"`
	PodPort  int    `json:"containerPort"`
	Protocol string `json:"protocol"`
}

func (m Mapping) String() string {
	return fmt.Sprintf("%s %s/%d -> %d", m.Name, m.Protocol, m.HostPort, m.PodPort)
}

// Parse reads one --port value: NAME:[HOSTIP:]HOSTPORT, with an IPv6 HOSTIP
// in brackets ("http:[::1]:8080"). Errors are ErrInvalidArgument.
func Parse(s string) (types.ExposedPort, error) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return types.ExposedPort{}, errdefs.InvalidArgument("port %q: want NAME:[HOSTIP:]HOSTPORT", s)
	}
	acn, err := types.NewACName(name)
	if err != nil {
		return types.ExposedPort{}, errdefs.InvalidArgument("port %q: name: %w", s, err)
	}
	ep := types.ExposedPort{Name: *acn}
	portStr := rest
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		host := rest[:i]
		portStr = rest[i+1:]
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
			if !strings.Contains(host, ":") {
				return types.ExposedPort{}, errdefs.InvalidArgument("port %q: brackets are for IPv6 addresses", s)
			}
		} else if strings.Contains(host, ":") {
			return types.ExposedPort{}, errdefs.InvalidArgument("port %q: write an IPv6 host address in brackets", s)
		}
		ip := net.ParseIP(host)
		if ip == nil || strings.Contains(host, "%") {
			return types.ExposedPort{}, errdefs.InvalidArgument("port %q: %q is not an IP address", s, host)
		}
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		ep.HostIP = ip
	}
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || p == 0 || strings.HasPrefix(portStr, "+") {
		return types.ExposedPort{}, errdefs.InvalidArgument("port %q: host port %q is not in 1-65535", s, portStr)
	}
	ep.HostPort = uint(p)
	return ep, nil
}

// Format is the inverse of Parse.
func Format(ep types.ExposedPort) string {
	if ep.HostIP == nil {
		return fmt.Sprintf("%s:%d", ep.Name, ep.HostPort)
	}
	return fmt.Sprintf("%s:%s", ep.Name, net.JoinHostPort(ep.HostIP.String(), strconv.FormatUint(uint64(ep.HostPort), 10)))
}

// Resolve matches each exposed port with the app port of the same name (or
// its PodPort, when set) and returns the mappings. A port with Count n > 1
// maps n consecutive host ports. A name no app declares is ErrNotFound; a
// name two apps declare differently, a bad protocol or a range past 65535
// is ErrInvalidArgument; the same host port twice is ErrAlreadyExists.
func Resolve(exposed []types.ExposedPort, appPorts []types.Port) ([]Mapping, error) {
	var out []Mapping
	seen := map[string]string{}
	for _, ep := range exposed {
		pp := ep.PodPort
		if pp == nil {
			for i := range appPorts {
				p := &appPorts[i]
				if p.Name != ep.Name {
					continue
				}
				if pp != nil && (pp.Port != p.Port || pp.Protocol != p.Protocol || pp.Count != p.Count) {
					return nil, errdefs.InvalidArgument("port %q: apps declare it differently (%s/%d, %s/%d)", ep.Name, pp.Protocol, pp.Port, p.Protocol, p.Port)
				}
				pp = p
			}
		}
		if pp == nil {
			return nil, errdefs.NotFound("port %q: no app of the pod declares a port of that name", ep.Name)
		}
		proto := strings.ToLower(pp.Protocol)
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, errdefs.InvalidArgument("port %q: protocol %q is not tcp, udp or sctp", ep.Name, pp.Protocol)
		}
		count := max(pp.Count, 1)
		if ep.HostPort == 0 || pp.Port == 0 || ep.HostPort+count-1 > 65535 || pp.Port+count-1 > 65535 {
			return nil, errdefs.InvalidArgument("port %q: ports %d and %d (count %d) do not fit in 1-65535", ep.Name, ep.HostPort, pp.Port, count)
		}
		hostIP := ""
		if ep.HostIP != nil {
			hostIP = ep.HostIP.String()
		}
		for i := range count {
			m := Mapping{
				Name:     string(ep.Name),
				HostIP:   hostIP,
				HostPort: int(ep.HostPort + i),
				PodPort:  int(pp.Port + i),
				Protocol: proto,
			}
			key := claimName(m)
			if other, dup := seen[key]; dup {
				return nil, errdefs.AlreadyExists("host port %s/%d is asked for twice (ports %q and %q)", proto, m.HostPort, other, ep.Name)
			}
			seen[key] = string(ep.Name)
			out = append(out, m)
		}
	}
	return out, nil
}
