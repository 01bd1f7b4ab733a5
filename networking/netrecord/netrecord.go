// Package netrecord is the format of the network records a pod directory
// keeps, net-info/<network name>.json (one per network the pod joined),
// and a reader of them that needs none of the CNI machinery: decoding a
// record and its CNI result takes the CNI result types only.
//
// It exists apart from networking/cni so that the commands that only show
// a pod's addresses (nscn list and status) do not link libcni and the CNI
// plugins' helpers, whose package initialisation (netlink, nftables and
// iptables tables) every nscn command would otherwise pay at start. The
// cni package, which writes the records and runs the plugins, reads them
// with Read too and adds its check of the recorded configuration.
//
// It reads files only, needs no privileges and runs in stage0 and in the
// stage1s.
package netrecord

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/networking/netflag"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Attachment is the pod's interface on one network, as networking.Setup
// returns it. It is defined here rather than in networking so that what
// only reads it (the hosts file and resolv.conf the stage1s generate from
// it, in sdpod, which the app helpers inside every pod link) does not link
// the CNI machinery.
type Attachment struct {
	Name   string      // the network
	IfName string      // in the pod: eth0, eth1, …
	IPs    []net.IPNet // the pod's addresses on it
	Result *types100.Result
}

// Version is the format version of a Record.
const Version = 1

// Record is what the pod directory keeps about one network attachment, in
// net-info/<network name>.json. It is written before the plugins run ADD,
// so that a pod killed during setup can still be torn down, and again with
// Result once ADD succeeded. It holds everything DEL needs, so teardown
// works from the record alone: after a reboot, or after the network
// configuration files changed.
type Record struct {
	Version     int    `json:"version"`
	Name        string `json:"name"`   // the network name
	Index       int    `json:"index"`  // position in --net, 0 for eth0
	IfName      string `json:"ifName"` // interface name in the pod, eth<Index>
	ContainerID string `json:"containerID"`
	NetNS       string `json:"netns"` // path of the pinned namespace
	// Args are the CNI_ARGS pairs given with --net=name:K=V;K2=V2.
	Args [][2]string `json:"args,omitempty"`
	// CapabilityArgs are the runtimeConfig values passed, e.g. portMappings.
	CapabilityArgs map[string]any `json:"capabilityArgs,omitempty"`
	// PluginDirs are the CNI plugin directories. A relative one is
	// relative to the pod directory, which moves during the pod's life
	// (run/ to exited-garbage/), so that plugins shipped in the stage1
	// rootfs are still found by teardown.
	PluginDirs []string `json:"pluginDirs"`
	// PortClaimDir is where the host-port claims of this pod live, if any.
	PortClaimDir string `json:"portClaimDir,omitempty"`
	// Config is the configuration list exactly as ADD ran it.
	Config json.RawMessage `json:"config"`
	// Result is the CNI result of ADD in the current spec version, or
	// absent while ADD has not succeeded.
	Result json.RawMessage `json:"result,omitempty"`
}

// ParsedResult decodes Result. It returns nil, nil when there is none.
func (r *Record) ParsedResult() (*types100.Result, error) {
	if len(r.Result) == 0 {
		return nil, nil
	}
	return ParseResult(r.Result)
}

// ParseResult decodes a CNI result of the current spec version and checks
// that its interface indexes and addresses are well formed. Errors are
// ErrInvalidArgument.
func ParseResult(data []byte) (*types100.Result, error) {
	var res types100.Result
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, errdefs.InvalidArgument("cni result: %w", err)
	}
	for i, ip := range res.IPs {
		if ip == nil || ip.Address.IP == nil || ip.Address.Mask == nil {
			return nil, errdefs.InvalidArgument("cni result: ip %d has no address", i)
		}
		if ip.Interface != nil && (*ip.Interface < 0 || *ip.Interface >= len(res.Interfaces)) {
			return nil, errdefs.InvalidArgument("cni result: ip %d names interface %d of %d", i, *ip.Interface, len(res.Interfaces))
		}
	}
	for i, iface := range res.Interfaces {
		if iface == nil {
			return nil, errdefs.InvalidArgument("cni result: interface %d is null", i)
		}
	}
	return &res, nil
}

// PodIPs returns the addresses of the result on the pod's interface ifName
// (or not bound to any interface), in result order.
func PodIPs(res *types100.Result, ifName string) []net.IPNet {
	var ips []net.IPNet
	for _, ip := range res.IPs {
		if ip.Interface != nil {
			iface := res.Interfaces[*ip.Interface]
			if iface.Name != ifName || iface.Sandbox == "" {
				continue
			}
		}
		ips = append(ips, ip.Address)
	}
	return ips
}

// Parse decodes a record and checks its fields and its result; it does
// not check the recorded configuration (the cni package does). Errors are
// ErrInvalidArgument.
func Parse(data []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, errdefs.InvalidArgument("network record: %w", err)
	}
	if r.Version != Version {
		return nil, errdefs.InvalidArgument("network record: version %d is not %d", r.Version, Version)
	}
	if !netflag.ValidName(r.Name) {
		return nil, errdefs.InvalidArgument("network record: invalid network name %q", r.Name)
	}
	if r.IfName == "" || r.ContainerID == "" || len(r.Config) == 0 || string(r.Config) == "null" {
		return nil, errdefs.InvalidArgument("network record %q: missing interface, container ID or config", r.Name)
	}
	if _, err := r.ParsedResult(); err != nil {
		return nil, fmt.Errorf("network record %q: %w", r.Name, err)
	}
	return &r, nil
}

// Path is the file of network name in the pod directory.
func Path(podDir, name string) string {
	return filepath.Join(podDir, stage1abi.NetInfoDir, name+".json")
}

// Read returns the records of the pod directory ordered by Index, each
// decoded and checked by parse (Parse, or a stricter one). A missing
// net-info directory means no records.
func Read(podDir string, parse func([]byte) (*Record, error)) ([]*Record, error) {
	dir := filepath.Join(podDir, stage1abi.NetInfoDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read network records: %w", err)
	}
	var recs []*Record
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name())) //nolint:gosec // G304: a CNI result recorded in the pod directory
		if err != nil {
			return nil, fmt.Errorf("read network records: %w", err)
		}
		r, err := parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		if e.Name() != r.Name+".json" {
			return nil, errdefs.InvalidArgument("network record %s names network %q", e.Name(), r.Name)
		}
		recs = append(recs, r)
	}
	slices.SortStableFunc(recs, func(a, b *Record) int { return a.Index - b.Index })
	return recs, nil
}
