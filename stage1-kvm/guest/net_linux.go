package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
)

// configureNetwork applies NetConfigFile, when there is one: each NIC
// found by its MAC address gets its name, MTU, addresses and routes, and
// is brought up. systemd does lo.
func configureNetwork() error {
	b, err := os.ReadFile(NetConfigFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var nics []NIC
	if err := json.Unmarshal(b, &nics); err != nil {
		return fmt.Errorf("%s: %w", NetConfigFile, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return err
	}
	for _, n := range nics {
		var link netlink.Link
		for _, l := range links {
			if strings.EqualFold(l.Attrs().HardwareAddr.String(), n.MAC) {
				link = l
			}
		}
		if link == nil {
			return fmt.Errorf("no network interface with MAC %s", n.MAC)
		}
		if n.Name != "" && link.Attrs().Name != n.Name {
			if err := netlink.LinkSetName(link, n.Name); err != nil {
				return fmt.Errorf("rename %s to %s: %w", link.Attrs().Name, n.Name, err)
			}
		}
		if n.MTU > 0 {
			if err := netlink.LinkSetMTU(link, n.MTU); err != nil {
				return fmt.Errorf("%s: set MTU: %w", n.Name, err)
			}
		}
		for _, a := range n.Addrs {
			addr, err := netlink.ParseAddr(a)
			if err != nil {
				return err
			}
			if err := netlink.AddrAdd(link, addr); err != nil {
				return fmt.Errorf("%s: add address %s: %w", n.Name, a, err)
			}
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("%s: up: %w", n.Name, err)
		}
		for _, r := range n.Routes {
			_, dst, err := net.ParseCIDR(r.Dst)
			if err != nil {
				return err
			}
			rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: net.ParseIP(r.Gw), Src: net.ParseIP(r.Src)}
			if rt.Gw == nil {
				rt.Scope = netlink.SCOPE_LINK
			}
			if err := netlink.RouteReplace(rt); err != nil {
				return fmt.Errorf("%s: add route %s via %q: %w", n.Name, r.Dst, r.Gw, err)
			}
		}
	}
	return nil
}
