package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/nosecone/nscn/internal/errdefs"
)

// CheckPlugins makes sure every plugin of n's chain, and the IPAM plugins
// they name, is an executable in one of dirs. A missing one is ErrNotFound.
func CheckPlugins(n *Network, dirs []string) error {
	if len(dirs) == 0 {
		return errdefs.InvalidArgument("network %q: no CNI plugin directory given", n.Name)
	}
	for _, p := range n.List.Plugins {
		types := []string{p.Network.Type}
		if p.Network.IPAM.Type != "" {
			types = append(types, p.Network.IPAM.Type)
		}
		for _, t := range types {
			if _, err := invoke.FindInPath(t, dirs); err != nil {
				return errdefs.NotFound("network %q: CNI plugin %q not found in %s", n.Name, t, strings.Join(dirs, ":"))
			}
		}
	}
	return nil
}

func (r *Record) runtimeConf(netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID:    r.ContainerID,
		NetNS:          netns,
		IfName:         r.IfName,
		Args:           r.Args,
		CapabilityArgs: r.CapabilityArgs,
	}
}

// PluginPaths resolves the record's plugin directories against podDir.
func (r *Record) PluginPaths(podDir string) []string {
	dirs := make([]string, 0, len(r.PluginDirs))
	for _, d := range r.PluginDirs {
		if !filepath.IsAbs(d) {
			d = filepath.Join(podDir, d)
		}
		dirs = append(dirs, d)
	}
	return dirs
}

func (r *Record) cni(podDir string) (*libcni.CNIConfig, *Network, error) {
	n, err := Parse(r.Config, true, "record "+r.Name)
	if err != nil {
		return nil, nil, err
	}
	dirs := r.PluginPaths(podDir)
	if err := CheckPlugins(n, dirs); err != nil {
		return nil, nil, err
	}
	return libcni.NewCNIConfigWithCacheDir(dirs, CacheDir(podDir), nil), n, nil
}

// Add runs, for the pod directory podDir, the ADD chain of the record's network and returns the result
// converted to the current spec version. The record is not modified.
func Add(ctx context.Context, podDir string, r *Record) (*types100.Result, error) {
	c, n, err := r.cni(podDir)
	if err != nil {
		return nil, err
	}
	res, err := c.AddNetworkList(ctx, n.List, r.runtimeConf(r.NetNS))
	if err != nil {
		return nil, classify(fmt.Errorf("network %q: add %s: %w", r.Name, r.IfName, err))
	}
	cur, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrFailedPrecondition, fmt.Errorf("network %q: result: %w", r.Name, err))
	}
	return cur, nil
}

// Del runs the DEL chain of the record's network. When nsAlive is false
// (the namespace pin is gone, as after a reboot or a lost mount), DEL runs
// without a namespace, which releases IPAM leases and port mappings, and
// the IP masquerading rules that ptp and bridge would only remove after
// finding the interface are removed here from the recorded result. DEL is
// idempotent; running it twice is fine.
func Del(ctx context.Context, podDir string, r *Record, nsAlive bool) error {
	c, n, err := r.cni(podDir)
	if err != nil {
		return err
	}
	netns := r.NetNS
	if !nsAlive {
		netns = ""
	}
	if err := c.DelNetworkList(ctx, n.List, r.runtimeConf(netns)); err != nil {
		return classify(fmt.Errorf("network %q: del %s: %w", r.Name, r.IfName, err))
	}
	if nsAlive || !masquerades(n) {
		return nil
	}
	res, err := r.ParsedResult()
	if err != nil || res == nil {
		return err
	}
	var ipns []*net.IPNet
	for _, a := range PodIPs(res, r.IfName) {
		ipns = append(ipns, &a)
	}
	if len(ipns) == 0 {
		return nil
	}
	if err := teardownIPMasq(ipns, n.Name, r.IfName, r.ContainerID); err != nil {
		return errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("network %q: remove ip masquerading: %w", r.Name, err))
	}
	return nil
}

// masquerades reports whether a plugin of the chain sets up IP
// masquerading the way ptp and bridge do ("ipMasq": true).
func masquerades(n *Network) bool {
	for _, p := range n.List.Plugins {
		var c struct {
			IPMasq bool `json:"ipMasq"`
		}
		if json.Unmarshal(p.Bytes, &c) == nil && c.IPMasq {
			return true
		}
	}
	return false
}

// classify attaches an errdefs class to a plugin failure, keeping its text.
func classify(err error) error {
	var te *types.Error
	if !errors.As(err, &te) {
		return errdefs.With(errdefs.ErrUnavailable, err)
	}
	switch {
	case strings.Contains(te.Msg, "no IP addresses available"):
		return errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("subnet exhausted: %w", err))
	case te.Code == types.ErrIncompatibleCNIVersion:
		return errdefs.With(errdefs.ErrFailedPrecondition, err)
	case te.Code == types.ErrUnsupportedField, te.Code == types.ErrDecodingFailure,
		te.Code == types.ErrInvalidNetworkConfig, te.Code == types.ErrInvalidEnvironmentVariables:
		return errdefs.With(errdefs.ErrInvalidArgument, err)
	case te.Code == types.ErrUnknownContainer, te.Code == types.ErrInvalidNetNS:
		return errdefs.With(errdefs.ErrNotFound, err)
	default:
		return errdefs.With(errdefs.ErrUnavailable, err)
	}
}
