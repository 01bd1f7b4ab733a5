package entrypoint

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/podnet"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/networking"
	"github.com/nosecone/nscn/networking/portfwd"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1/nspawn"
)

// Where the stage1-nspawn image keeps what networking needs, relative to
// its rootfs: the CNI plugins (scripts/build-stage1-nspawn.sh copies them
// from build/cni-plugins) and the files run generates for the apps'
// /etc/resolv.conf and /etc/hosts.
const (
	cniPluginDirInImage = "usr/lib/nscn/cni"
	netResolvConf       = "etc/nscn-net-resolv.conf"
	netHosts            = "etc/nscn-net-hosts"
)

// systemConfigDir holds system-wide net.d/ network definitions, below the
// --local-config directory. It is stage0's default --system-config, which
// the run entrypoint is not told.
const systemConfigDir = "/usr/lib/nscn"

// podNet is the pod's network once set up.
type podNet struct {
	// NetNS is the namespace systemd-nspawn joins; empty for --net=host.
	NetNS string
	// ResolvConf and Hosts are the host paths of the generated files, or
	// empty when there is none (see sdpod.LayoutConfig).
	ResolvConf, Hosts string
	// HostAddr is the host's address on the pod's first network (the
	// gateway of eth0), where host services such as the metadata service
	// can listen for the pod; nil for host and none.
	HostAddr net.IP
}

// setupNetwork gives the pod its network before systemd-nspawn starts:
// nothing for --net=host, otherwise networking.Setup, which creates and
// records the namespace (a namespace with only lo for --net=none), runs CNI
// ADD for each network and forwards the pod manifest's ports. It then
// writes the apps' fallback hosts file (the pod's hostname on its first
// address) and, when a CNI result carries DNS servers, their resolv.conf.
// On failure nothing is left set up. The gc entrypoint undoes it
// (networking.Teardown).
func setupNetwork(ctx context.Context, log *slog.Logger, podDir string, args sdpod.RunArgs, pm *schema.PodManifest) (podNet, error) {
	pend, err := prepareNetwork(ctx, log, podDir, args, pm)
	if err != nil || pend == nil {
		return podNet{}, err
	}
	return finishNetwork(ctx, log, podDir, args, pend)
}

// prepareNetwork is the first half of setupNetwork: every check, the
// port claims and the namespace (networking.Prepare); nil for --net=host.
func prepareNetwork(ctx context.Context, log *slog.Logger, podDir string, args sdpod.RunArgs, pm *schema.PodManifest) (*networking.Pending, error) {
	if args.NetMode == sdpod.NetHost {
		if len(pm.Ports) > 0 {
			return nil, errdefs.InvalidArgument("ports can be forwarded only on a CNI network, not with --%s=%s", stage1abi.FlagNet, stage1abi.NetHost)
		}
		return nil, nil
	}
	var appPorts []types.Port
	for _, ra := range pm.Apps {
		if ra.App != nil {
			appPorts = append(appPorts, ra.App.Ports...)
		}
	}
	ports, err := portfwd.Resolve(pm.Ports, appPorts)
	if err != nil {
		return nil, err
	}
	plugins, err := cniPluginDir()
	if err != nil {
		return nil, err
	}
	return networking.Prepare(ctx, networking.Config{
		PodDir:       podDir,
		UUID:         args.UUID,
		Nets:         args.Nets,
		LocalConfig:  args.LocalConfig,
		SystemConfig: systemConfigDir,
		PluginDirs:   []string{plugins},
		Ports:        ports,
		Logger:       log,
	})
}

// finishNetwork is the second half: the CNI ADDs in the namespace
// prepareNetwork made, then the apps' files. On failure nothing is left
// set up.
func finishNetwork(ctx context.Context, log *slog.Logger, podDir string, args sdpod.RunArgs, pend *networking.Pending) (_ podNet, err error) {
	var pn podNet
	res, err := pend.Add(ctx)
	if err != nil {
		return pn, err
	}
	defer func() {
		if err != nil {
			if terr := networking.Teardown(context.WithoutCancel(ctx), podDir, networking.WithLogger(log)); terr != nil {
				log.WarnContext(ctx, "undo network setup", "err", terr)
			}
		}
	}()
	pn.NetNS = res.NetNS
	hostname := args.Hostname
	if hostname == "" {
		hostname = nspawn.MachineName(args.UUID)
	}
	hosts, resolv := podnet.NetFiles(hostname, res.Networks)
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
	if len(res.Networks) > 0 {
		pn.HostAddr = podnet.Gateway(res.Networks[0])
	}
	log.DebugContext(ctx, "pod network ready", "netns", pn.NetNS, "host_addr", pn.HostAddr)
	return pn, nil
}

// overlapsNetwork reports whether run gives the pod its network while
// the pod boots (startNetwork) rather than before systemd-nspawn starts.
// That takes a pod whose layout does not depend on the network: one with
// no app yet (nscn app sandbox, a CRI sandbox), whose apps, added once it
// is ready, read the network's files from the mutable record. The pod is
// reported ready only once both its systemd and the network are.
func overlapsNetwork(args sdpod.RunArgs, pm *schema.PodManifest) bool {
	return args.Mutable && len(pm.Apps) == 0 && args.NetMode != sdpod.NetHost
}

// netSetup is the second half of the network's setup (finishNetwork and
// what needs its result), running beside the pod's start.
type netSetup struct {
	done chan struct{}
	err  error
}

// startNetwork runs finishNetwork in the background and then then(its
// result); a failure of then undoes the network too.
func startNetwork(ctx context.Context, log *slog.Logger, podDir string, args sdpod.RunArgs, pend *networking.Pending, then func(podNet) error) *netSetup {
	n := &netSetup{done: make(chan struct{})}
	go func() {
		defer close(n.done)
		pn, err := finishNetwork(ctx, log, podDir, args, pend)
		if err == nil {
			if err = then(pn); err != nil {
				if terr := networking.Teardown(context.WithoutCancel(ctx), podDir, networking.WithLogger(log)); terr != nil {
					log.WarnContext(ctx, "undo network setup", "err", terr)
				}
			}
		}
		n.err = err
	}()
	return n
}

// wait returns once the network is set up, or its setup failed and was
// undone; nil n has nothing to wait for.
func (n *netSetup) wait() error {
	if n == nil {
		return nil
	}
	<-n.done
	return n.err
}

// teardownNetwork is the gc entrypoint's part: networking.Teardown, which
// works from the pod directory's records alone.
// cniPluginDir is the host path of the CNI plugins in the stage1 image
// the entrypoint runs from (imageRoot).
func cniPluginDir() (string, error) {
	root, err := imageRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, cniPluginDirInImage), nil
}

func teardownNetwork(ctx context.Context, log *slog.Logger, podDir string) error {
	plugins, err := cniPluginDir()
	if err != nil {
		return err
	}
	// The plugins of the image gc runs from, whatever directory the
	// records name: a record written by an older run names the pod's
	// copy, which the pod could have changed.
	if err := networking.Teardown(ctx, podDir, networking.WithLogger(log), networking.WithPluginDirs(plugins)); err != nil {
		return fmt.Errorf("tear down the pod's network: %w", err)
	}
	return nil
}
