package cni

import (
	"encoding/json"
)

// BuiltIn returns the configuration of a built-in network, and false for
// any other name. ipamDataDir, when not empty, becomes the host-local
// plugin's dataDir (default /var/lib/cni/networks).
//
//   - default: ptp, 172.16.28.0/24 with host-local IPAM, a default route
//     through the host and IP masquerading: the pod reaches what the host
//     reaches.
//   - default-restricted: ptp, 172.31.0.0/16, no default route and no
//     masquerading: the pod reaches the host only.
func BuiltIn(name, ipamDataDir string) (*Network, bool) {
	var ptp map[string]any
	switch name {
	case NetDefault:
		ptp = map[string]any{
			"type":   "ptp",
			"ipMasq": true,
			"ipam":   ipam(DefaultSubnet, ipamDataDir, []map[string]string{{"dst": "0.0.0.0/0"}}),
		}
	case NetDefaultRestricted:
		ptp = map[string]any{
			"type":   "ptp",
			"ipMasq": false,
			"ipam":   ipam(DefaultRestrictedSubnet, ipamDataDir, nil),
		}
	default:
		return nil, false
	}
	list := map[string]any{
		"cniVersion": SpecVersion,
		"name":       name,
		"plugins":    []any{ptp},
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		panic(err) // a static map always marshals
	}
	n, err := Parse(data, true, "built-in")
	if err != nil {
		panic(err) // covered by TestBuiltIn
	}
	return n, true
}

func ipam(subnet, dataDir string, routes []map[string]string) map[string]any {
	m := map[string]any{"type": "host-local", "subnet": subnet}
	if dataDir != "" {
		m["dataDir"] = dataDir
	}
	if routes != nil {
		m["routes"] = routes
	}
	return m
}
