package cni

import (
	"net"

	"github.com/containernetworking/plugins/pkg/ip"
)

// teardownIPMasq removes the masquerading rules that ptp and bridge set up
// for ipns (chain and comment derived from network and containerID), with
// whichever of iptables and nftables the host has.
func teardownIPMasq(ipns []*net.IPNet, network, ifName, containerID string) error {
	return ip.TeardownIPMasqForNetworks(ipns, network, ifName, containerID)
}
