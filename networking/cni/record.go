package cni

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
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// RecordVersion is the format version of a Record.
const RecordVersion = 1

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

// ParseRecord decodes and checks a record. Errors are ErrInvalidArgument.
func ParseRecord(data []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, errdefs.InvalidArgument("network record: %w", err)
	}
	if r.Version != RecordVersion {
		return nil, errdefs.InvalidArgument("network record: version %d is not %d", r.Version, RecordVersion)
	}
	if !ValidName(r.Name) {
		return nil, errdefs.InvalidArgument("network record: invalid network name %q", r.Name)
	}
	if r.IfName == "" || r.ContainerID == "" || len(r.Config) == 0 {
		return nil, errdefs.InvalidArgument("network record %q: missing interface, container ID or config", r.Name)
	}
	if _, err := Parse(r.Config, true, "record "+r.Name); err != nil {
		return nil, err
	}
	if _, err := r.ParsedResult(); err != nil {
		return nil, fmt.Errorf("network record %q: %w", r.Name, err)
	}
	return &r, nil
}

// CacheDir is libcni's cache directory for the pod (results kept for DEL's
// prevResult): net-info/cache in the pod directory.
func CacheDir(podDir string) string { return filepath.Join(podDir, stage1abi.NetInfoDir, "cache") }

// RecordPath is the file of network name in the pod directory.
func RecordPath(podDir, name string) string {
	return filepath.Join(podDir, stage1abi.NetInfoDir, name+".json")
}

// WriteRecord stores r in the pod directory, atomically (write and rename).
func WriteRecord(podDir string, r *Record) error {
	dir := filepath.Join(podDir, stage1abi.NetInfoDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write network record: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write network record: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("write network record: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), RecordPath(podDir, r.Name))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write network record %q: %w", r.Name, err)
	}
	return nil
}

// ReadRecords returns the records of the pod directory ordered by Index.
// A missing net-info directory means no records.
func ReadRecords(podDir string) ([]*Record, error) {
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
		r, err := ParseRecord(data)
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

// RemoveRecord deletes the record of network name; a missing one is fine.
func RemoveRecord(podDir, name string) error {
	if err := os.Remove(RecordPath(podDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network record: %w", err)
	}
	return nil
}
