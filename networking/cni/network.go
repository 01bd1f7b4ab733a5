package cni

import (
	"encoding/json"
	"fmt"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/networking/netflag"
)

// Names of the built-in networks. "default" is stage1abi.NetDefault.
const (
	NetDefault           = "default"
	NetDefaultRestricted = "default-restricted"
)

// Subnets of the built-in networks, as in rkt.
const (
	DefaultSubnet           = "172.16.28.0/24"
	DefaultRestrictedSubnet = "172.31.0.0/16"
)

// SpecVersion is the CNI specification version of the built-in networks and
// the newest one accepted in user configurations.
var SpecVersion = version.Current()

// ValidName reports whether s is usable as a CNI network name.
func ValidName(s string) bool { return netflag.ValidName(s) }

// Network is one CNI network configuration, ready to run: always a
// configuration list, whatever the file held.
type Network struct {
	Name   string
	Source string // the file it came from, or "built-in"
	List   *libcni.NetworkConfigList
}

// Bytes is the configuration list as JSON, exactly what is run and recorded.
func (n *Network) Bytes() []byte { return n.List.Bytes }

// Types lists the plugin types of the chain, in order.
func (n *Network) Types() []string {
	t := make([]string, 0, len(n.List.Plugins))
	for _, p := range n.List.Plugins {
		t = append(t, p.Network.Type)
	}
	return t
}

// Parse reads a configuration: a list (.conflist) when list is true,
// otherwise a single plugin configuration (.conf, .json) that is wrapped
// into a list. Errors are ErrInvalidArgument.
func Parse(data []byte, list bool, source string) (*Network, error) {
	var l *libcni.NetworkConfigList
	if list {
		var err error
		l, err = libcni.NetworkConfFromBytes(data)
		if err != nil {
			return nil, errdefs.InvalidArgument("network configuration %s: %w", source, err)
		}
	} else {
		c, err := libcni.NetworkPluginConfFromBytes(data)
		if err != nil {
			return nil, errdefs.InvalidArgument("network configuration %s: %w", source, err)
		}
		var raw map[string]any
		if err := json.Unmarshal(data, &raw); err != nil {
			return nil, errdefs.InvalidArgument("network configuration %s: %w", source, err)
		}
		// What libcni's deprecated ConfListFromConf did: the plugin's own
		// JSON as the only entry of a list with its name and version.
		name, _ := raw["name"].(string)
		b, err := json.Marshal(map[string]any{"name": name, "cniVersion": c.Network.CNIVersion, "plugins": []any{raw}})
		if err != nil {
			return nil, errdefs.InvalidArgument("network configuration %s: %w", source, err)
		}
		l, err = libcni.NetworkConfFromBytes(b)
		if err != nil {
			return nil, errdefs.InvalidArgument("network configuration %s: %w", source, err)
		}
	}
	n := &Network{Name: l.Name, Source: source, List: l}
	if err := n.validate(); err != nil {
		return nil, errdefs.InvalidArgument("network configuration %s: %w", source, err)
	}
	return n, nil
}

func (n *Network) validate() error {
	if !ValidName(n.Name) {
		return fmt.Errorf("invalid network name %q", n.Name)
	}
	if n.List.CNIVersion == "" {
		return fmt.Errorf("network %q has no cniVersion", n.Name)
	}
	if newer, err := version.GreaterThan(n.List.CNIVersion, SpecVersion); err != nil {
		return fmt.Errorf("network %q: cniVersion: %w", n.Name, err)
	} else if newer {
		return fmt.Errorf("network %q: cniVersion %s is newer than the supported %s", n.Name, n.List.CNIVersion, SpecVersion)
	}
	if len(n.List.Plugins) == 0 {
		return fmt.Errorf("network %q has no plugins", n.Name)
	}
	for i, p := range n.List.Plugins {
		if p.Network.Type == "" {
			return fmt.Errorf("network %q: plugin %d has no type", n.Name, i)
		}
	}
	return nil
}

// HasCapability reports whether a plugin of the chain declares capability
// name (for example "portMappings").
func (n *Network) HasCapability(name string) bool {
	for _, p := range n.List.Plugins {
		if p.Network.Capabilities[name] {
			return true
		}
	}
	return false
}

// WithPortMap returns the network with the portmap plugin appended to its
// chain, unless a plugin already declares the portMappings capability. snat
// makes forwarded ports reachable from the host's own addresses, 127.0.0.1
// included. The configuration must be a chain (cniVersion 0.3.0 or later).
func (n *Network) WithPortMap() (*Network, error) {
	if n.HasCapability("portMappings") {
		return n, nil
	}
	if ok, err := version.GreaterThanOrEqualTo(n.List.CNIVersion, "0.3.0"); err != nil || !ok {
		return nil, errdefs.InvalidArgument("network %q: cniVersion %s cannot chain the portmap plugin for port forwarding (needs 0.3.0 or later)", n.Name, n.List.CNIVersion)
	}
	var raw map[string]any
	if err := json.Unmarshal(n.List.Bytes, &raw); err != nil {
		return nil, errdefs.InvalidArgument("network %q: %w", n.Name, err)
	}
	plugins, _ := raw["plugins"].([]any)
	if plugins == nil {
		// A list without inline plugins: rebuild it from the parsed ones.
		for _, p := range n.List.Plugins {
			var m map[string]any
			if err := json.Unmarshal(p.Bytes, &m); err != nil {
				return nil, errdefs.InvalidArgument("network %q: %w", n.Name, err)
			}
			plugins = append(plugins, m)
		}
	}
	raw["plugins"] = append(plugins, map[string]any{
		"type":         "portmap",
		"capabilities": map[string]bool{"portMappings": true},
		"snat":         true,
	})
	data, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return nil, err
	}
	return Parse(data, true, n.Source)
}
