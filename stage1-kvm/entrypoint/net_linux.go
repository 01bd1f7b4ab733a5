package entrypoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/podnet"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/networking"
	"github.com/nosecone/nscn/networking/netns"
	"github.com/nosecone/nscn/networking/portfwd"
	"github.com/nosecone/nscn/stage1-kvm/guest"
)

// Where the image keeps the CNI plugins, and the files run generates for
// the apps' /etc/resolv.conf and /etc/hosts, relative to its rootfs (as
// in the nspawn image).
const (
	cniPluginDirInImage = "usr/lib/nscn/cni"
	netResolvConf       = "etc/nscn-net-resolv.conf"
	netHosts            = "etc/nscn-net-hosts"
	systemConfigDir     = "/usr/lib/nscn"
)

// podNet is the pod's network as the guest gets it.
type podNet struct {
	// ResolvConf and Hosts are host files for the apps, empty for none.
	ResolvConf, Hosts string
	// Taps are the tap devices of the guest's NICs, one per network, in
	// the pod's network namespace; qemu inherits them.
	Taps []*os.File
	NICs []guest.NIC
	// HostAddr is the host's address on the pod's first network (the
	// gateway of eth0), where the metadata service listens for the pod;
	// invalid with --net=none.
	HostAddr netip.Addr
}

// setupNetwork gives the pod its network (networking.Setup: the
// namespace, CNI ADD for each network, the forwarded ports), then hands
// each of the pod's interfaces over to the guest: the interface keeps
// its MAC address and gives up its addresses, a tap device is made
// beside it, and two tc redirects join them, so that each frame the
// interface receives goes out on the tap to the guest and each frame from
// the guest leaves through the interface (rkt's ptp → tap, without a
// bridge). The guest's NIC takes the interface's MAC address, addresses
// and routes (guest.NetConfigFile). --net=none gives no NIC.
func setupNetwork(ctx context.Context, log *slog.Logger, podDir string, args sdpod.RunArgs, pm *schema.PodManifest) (_ podNet, err error) {
	var pn podNet
	var appPorts []types.Port
	for _, ra := range pm.Apps {
		if ra.App != nil {
			appPorts = append(appPorts, ra.App.Ports...)
		}
	}
	ports, err := portfwd.Resolve(pm.Ports, appPorts)
	if err != nil {
		return pn, err
	}
	root, err := imageRoot()
	if err != nil {
		return pn, err
	}
	res, err := networking.Setup(ctx, networking.Config{
		PodDir: podDir, UUID: args.UUID, Nets: args.Nets,
		LocalConfig: args.LocalConfig, SystemConfig: systemConfigDir,
		PluginDirs: []string{filepath.Join(root, cniPluginDirInImage)},
		Ports:      ports, Logger: log,
	})
	if err != nil {
		return pn, err
	}
	defer func() {
		if err != nil {
			for _, f := range pn.Taps {
				_ = f.Close()
			}
			if terr := teardownNetwork(context.WithoutCancel(ctx), log, podDir); terr != nil {
				log.WarnContext(ctx, "undo network setup", "err", terr)
			}
		}
	}()
	if args.NetMode == sdpod.NetNone {
		return pn, nil
	}
	if len(res.Networks) > 0 {
		if a, ok := netip.AddrFromSlice(podnet.Gateway(res.Networks[0])); ok {
			pn.HostAddr = a.Unmap()
		}
	}
	hosts, resolv := podnet.NetFiles(hostname(args), res.Networks)
	pn.Hosts = inStage1(podDir, netHosts)
	if err := writeNewFile(pn.Hosts, hosts, 0o644); err != nil {
		return pn, err
	}
	if resolv != nil {
		pn.ResolvConf = inStage1(podDir, netResolvConf)
		if err := writeNewFile(pn.ResolvConf, resolv, 0o644); err != nil {
			return pn, err
		}
	}
	err = netns.Do(ctx, res.NetNS, func() error {
		for i, a := range res.Networks {
			nic, tap, err := handOver(a.IfName, fmt.Sprintf("tap%d", i))
			if tap != nil {
				pn.Taps = append(pn.Taps, tap)
			}
			if nic.MAC != "" {
				pn.NICs = append(pn.NICs, nic)
			}
			if err != nil {
				return fmt.Errorf("hand %s over to the guest: %w", a.IfName, err)
			}
		}
		return nil
	})
	// Recorded first, for teardownNetwork, even when a hand-over failed
	// half-way.
	if rerr := writeHandOver(podDir, handOverRecord{NetNS: res.NetNS, NICs: pn.NICs}); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return pn, err
	}
	data, err := json.MarshalIndent(pn.NICs, "", "  ")
	if err != nil {
		return pn, err
	}
	if err := os.MkdirAll(filepath.Dir(inStage1(podDir, guest.NetConfigFile)), 0o755); err != nil {
		return pn, err
	}
	if err := writeNewFile(inStage1(podDir, guest.NetConfigFile), data, 0o644); err != nil {
		return pn, err
	}
	log.DebugContext(ctx, "pod network ready", "netns", res.NetNS, "nics", pn.NICs)
	return pn, nil
}

// handOver runs in the pod's network namespace: it records ifName's
// configuration, takes its addresses away (their routes go with them),
// makes the tap device tapName and joins the two with tc redirects.
func handOver(ifName, tapName string) (guest.NIC, *os.File, error) {
	link, err := netlink.LinkByName(ifName)
	if err != nil {
		return guest.NIC{}, nil, err
	}
	attrs := link.Attrs()
	nic := guest.NIC{Name: ifName, MAC: attrs.HardwareAddr.String(), MTU: attrs.MTU}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nic, nil, err
	}
	for _, a := range addrs {
		nic.Addrs = append(nic.Addrs, a.IPNet.String())
	}
	routes, err := netlink.RouteList(link, netlink.FAMILY_V4)
	if err != nil {
		return nic, nil, err
	}
	// Routes on the link first: a route via a gateway needs one that
	// reaches the gateway.
	var via []guest.Route
	for _, r := range routes {
		gr := guest.Route{Dst: "0.0.0.0/0"}
		if r.Dst != nil {
			gr.Dst = r.Dst.String()
		}
		if r.Src != nil {
			gr.Src = r.Src.String()
		}
		if r.Gw != nil {
			gr.Gw = r.Gw.String()
			via = append(via, gr)
			continue
		}
		if r.Protocol == unix.RTPROT_KERNEL {
			continue // the address's own subnet route: the guest's kernel adds it
		}
		nic.Routes = append(nic.Routes, gr)
	}
	nic.Routes = append(nic.Routes, via...)
	for _, a := range addrs {
		if err := netlink.AddrDel(link, &a); err != nil {
			return nic, nil, fmt.Errorf("remove address %s: %w", a.IPNet, err)
		}
	}
	tap, err := openTap(tapName)
	if err != nil {
		return nic, nil, err
	}
	tl, err := netlink.LinkByName(tapName)
	if err != nil {
		return nic, tap, err
	}
	if err := netlink.LinkSetMTU(tl, attrs.MTU); err != nil {
		return nic, tap, err
	}
	if err := netlink.LinkSetUp(tl); err != nil {
		return nic, tap, err
	}
	if err := redirect(link, tl); err != nil {
		return nic, tap, err
	}
	if err := redirect(tl, link); err != nil {
		return nic, tap, err
	}
	return nic, tap, nil
}

// openTap creates the tap device name (no packet information header) and
// returns its descriptor. The device lasts as long as the descriptor:
// when qemu, which inherits it, exits, the device is gone.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/dev/net/tun", Err: err}
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("tap name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("create tap %s: %w", name, os.NewSyscallError("ioctl TUNSETIFF", err))
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// redirect sends every frame from's ingress receives out of to.
func redirect(from, to netlink.Link) error {
	qd := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: from.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS,
	}}
	if err := netlink.QdiscAdd(qd); err != nil {
		return fmt.Errorf("add ingress qdisc to %s: %w", from.Attrs().Name, err)
	}
	f := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: from.Attrs().Index, Parent: netlink.MakeHandle(0xffff, 0), Priority: 1, Protocol: unix.ETH_P_ALL,
		},
		Actions: []netlink.Action{&netlink.MirredAction{
			ActionAttrs:  netlink.ActionAttrs{Action: netlink.TC_ACT_STOLEN},
			MirredAction: netlink.TCA_EGRESS_REDIR, Ifindex: to.Attrs().Index,
		}},
	}
	if err := netlink.FilterAdd(f); err != nil {
		return fmt.Errorf("redirect %s to %s: %w", from.Attrs().Name, to.Attrs().Name, err)
	}
	return nil
}

// handOverFile records, in the pod directory (out of the guest's reach),
// which interfaces handOver took addresses from.
const handOverFile = StateDir + "/net.json"

type handOverRecord struct {
	NetNS string      `json:"netns"`
	NICs  []guest.NIC `json:"nics"`
}

func writeHandOver(podDir string, r handOverRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(podDir, StateDir), 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(podDir, handOverFile), data, 0o600)
}

// giveBack puts the addresses handOver took back on the pod's
// interfaces, while their namespace exists: CNI DEL of the ptp and
// bridge plugins finds the pod's addresses on its interface, and without
// them leaves the network's masquerading rules behind.
func giveBack(ctx context.Context, podDir string) error {
	data, err := os.ReadFile(filepath.Join(podDir, handOverFile)) //nolint:gosec // G304: a file of the pod directory
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var r handOverRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return err
	}
	if ok, err := netns.IsNetNS(r.NetNS); err != nil || !ok {
		return nil //nolint:nilerr // the namespace is gone, and the addresses with it
	}
	return netns.Do(ctx, r.NetNS, func() error {
		var errs []error
		for _, n := range r.NICs {
			link, err := netlink.LinkByName(n.Name)
			if err != nil {
				continue // gone with its namespace's end
			}
			for _, a := range n.Addrs {
				addr, err := netlink.ParseAddr(a)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
					errs = append(errs, fmt.Errorf("%s: add %s: %w", n.Name, a, err))
				}
			}
		}
		return errors.Join(errs...)
	})
}

// teardownNetwork is the gc entrypoint's part: networking.Teardown (CNI
// DEL, port claims, the namespace pin), from the pod directory's records
// alone. The taps went with qemu.
func teardownNetwork(ctx context.Context, log *slog.Logger, podDir string) error {
	if err := giveBack(ctx, podDir); err != nil {
		log.WarnContext(ctx, "give the pod's interfaces their addresses back", "err", err)
	}
	root, err := imageRoot()
	if err != nil {
		return err
	}
	if err := networking.Teardown(ctx, podDir, networking.WithLogger(log), networking.WithPluginDirs(filepath.Join(root, cniPluginDirInImage))); err != nil {
		return fmt.Errorf("tear down the pod's network: %w", err)
	}
	return nil
}
