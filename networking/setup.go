package networking

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/networking/cni"
	"github.com/nosecone/nscn/networking/netns"
	"github.com/nosecone/nscn/networking/netrecord"
	"github.com/nosecone/nscn/networking/portfwd"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// DefaultNetNSDir is where pod namespaces are pinned, as nscn-<uuid>, so
// that `ip netns` lists them.
const DefaultNetNSDir = "/run/netns"

// NetNSPrefix starts the name of every namespace pin Setup makes.
const NetNSPrefix = "nscn-"

// Config is what Setup needs to know about a pod.
type Config struct {
	PodDir string // the pod directory; made absolute
	UUID   string // the pod's UUID, used as the CNI container ID
	Nets   Nets   // from ParseNets; empty means default

	// LocalConfig and SystemConfig are nscn's configuration directories;
	// their net.d/ subdirectories hold user networks (local wins).
	LocalConfig  string
	SystemConfig string

	// PluginDirs are searched for CNI plugin executables. A relative one
	// is relative to PodDir. A directory below PodDir is recorded relative
	// to it, so that teardown still finds it after stage0 moved the pod
	// directory.
	PluginDirs []string

	// Ports are forwarded from the host to the pod (see portfwd.Resolve),
	// through the portmap plugin chained to the first network.
	Ports []portfwd.Mapping

	NetNSDir     string // default DefaultNetNSDir
	PortClaimDir string // default portfwd.DefaultClaimDir
	// IPAMDataDir is the host-local data directory of the built-in
	// networks; empty means the plugin's default, /var/lib/cni/networks.
	IPAMDataDir string

	Logger *slog.Logger // default: discard
}

// Result describes the pod's network after Setup.
type Result struct {
	// NetNS is the path of the pod's network namespace, empty for host
	// networking. Pass it to systemd-nspawn --network-namespace-path=.
	NetNS    string
	Networks []Attachment
}

// Attachment is the pod's interface on one network (netrecord.Attachment).
type Attachment = netrecord.Attachment

func (c *Config) normalize() error {
	if c.PodDir == "" {
		return errdefs.InvalidArgument("networking: no pod directory")
	}
	abs, err := filepath.Abs(c.PodDir)
	if err != nil {
		return fmt.Errorf("networking: pod directory: %w", err)
	}
	c.PodDir = abs
	if fi, err := os.Stat(c.PodDir); err != nil || !fi.IsDir() {
		return errdefs.NotFound("networking: pod directory %s does not exist", c.PodDir)
	}
	if !cni.ValidName(c.UUID) {
		return errdefs.InvalidArgument("networking: invalid pod UUID %q", c.UUID)
	}
	if len(c.Nets) == 0 {
		c.Nets = Nets{{Name: stage1abi.NetDefault}}
	}
	if _, err := ParseNets(c.Nets.String()); err != nil {
		return err
	}
	if c.NetNSDir == "" {
		c.NetNSDir = DefaultNetNSDir
	}
	if c.PortClaimDir == "" {
		c.PortClaimDir = portfwd.DefaultClaimDir
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.Ports) > 0 && (c.Nets.Host() || c.Nets.None()) {
		return errdefs.InvalidArgument("networking: ports can be forwarded only on a CNI network, not with --net=%s", c.Nets[0].Name)
	}
	return nil
}

// Setup gives the pod its network. For --net=host it does nothing. For
// --net=none it creates the namespace with only lo. Otherwise it loads
// every network (unknown name: ErrNotFound; broken configuration:
// ErrInvalidArgument; missing plugin: ErrNotFound), claims the forwarded
// host ports (taken: ErrAlreadyExists), creates and pins the namespace,
// and runs CNI ADD for each network in order (a plugin failure such as an
// exhausted subnet: ErrUnavailable). All checks come before any change to
// the host. When a later step fails, Setup undoes everything it did, and
// the pod directory is as before.
//
// Setup records its state in the pod directory as it goes, so Teardown
// can undo a Setup that was killed half-way.
//
// Setup is Prepare and then Pending.Add.
func Setup(ctx context.Context, c Config) (*Result, error) {
	p, err := Prepare(ctx, c)
	if err != nil {
		return nil, err
	}
	return p.Add(ctx)
}

// Pending is a pod network of which Prepare made the namespace and whose
// CNI ADDs are still to run (Add), so that a caller can start the pod in
// the namespace while the plugins give it its interfaces. It holds the
// network lock shared (hostclean.go) until Add or Undo returns. Add or
// Undo must be called, once.
type Pending struct {
	c      Config
	log    *slog.Logger
	recs   []*cni.Record
	nsPath string
	unlock func()
	undone bool // undo tore down everything
}

// Prepare is the first half of Setup: every check, the records, the port
// claims and the namespace (empty for --net=host: a Pending whose Add
// returns an empty Result). On failure it undoes what it did, as Setup.
func Prepare(ctx context.Context, c Config) (_ *Pending, err error) {
	if err := c.normalize(); err != nil {
		return nil, err
	}
	log := c.Logger.With("pod", c.UUID)
	if c.Nets.Host() {
		log.Debug("host networking: nothing to set up")
		return &Pending{c: c, log: log, unlock: func() {}}, nil
	}
	// Shared with other setups, exclusive with Teardown's cleanup of the
	// host's CNI bookkeeping (hostclean.go).
	unlock, err := lockNet(unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	if _, err := os.Lstat(filepath.Join(c.PodDir, stage1abi.NetNSFile)); err == nil {
		return nil, errdefs.FailedPrecondition("networking: pod %s is already set up (%s exists)", c.UUID, stage1abi.NetNSFile)
	}
	if recs, err := cni.ReadRecords(c.PodDir); err != nil || len(recs) > 0 {
		return nil, errors.Join(err, errdefs.FailedPrecondition("networking: pod %s already has network records", c.UUID))
	}

	// Validate everything before touching the host.
	var recs []*cni.Record
	if !c.Nets.None() {
		recs, err = c.records()
		if err != nil {
			return nil, err
		}
	}
	p := &Pending{c: c, log: log, recs: recs, nsPath: filepath.Join(c.NetNSDir, NetNSPrefix+c.UUID), unlock: unlock}
	defer func() {
		if err != nil {
			err = p.undo(ctx, err)
		}
	}()
	// Records first, so that the port claims below are not taken for stale
	// and a kill from here on leaves something for Teardown.
	for _, r := range recs {
		if err := cni.WriteRecord(c.PodDir, r); err != nil {
			return nil, err
		}
	}
	if err := portfwd.Claim(c.PortClaimDir, c.UUID, c.PodDir, c.Ports); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.PodDir, stage1abi.NetNSFile), []byte(p.nsPath+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("networking: record netns: %w", err)
	}
	log.Debug("create network namespace", "netns", p.nsPath)
	if err := netns.New(ctx, p.nsPath); err != nil {
		return nil, fmt.Errorf("networking: pod %s: %w", c.UUID, err)
	}
	return p, nil
}

// NetNS is the path of the pod's namespace, which exists; empty for host
// networking.
func (p *Pending) NetNS() string { return p.nsPath }

// Add runs CNI ADD for each network in order and returns the pod's
// network. When a plugin fails, it undoes everything Prepare and Add did
// (the namespace pin included: processes in the namespace keep it, without
// interfaces) and the pod directory is as before Prepare.
func (p *Pending) Add(ctx context.Context) (*Result, error) {
	res, err := p.add(ctx)
	p.unlock()
	if err != nil && p.undone {
		// The bookkeeping the ADDs made on the host (host-local's
		// directory, portmap's chains), once no other pod uses it, as
		// Teardown does; it takes the lock exclusively.
		if cerr := cleanHost(context.WithoutCancel(ctx), p.log, p.recs); cerr != nil {
			p.log.Warn("clean the host's CNI bookkeeping", "error", cerr)
		}
	}
	return res, err
}

func (p *Pending) add(ctx context.Context) (_ *Result, err error) {
	if p.c.Nets.Host() {
		return &Result{}, nil
	}
	defer func() {
		if err != nil {
			err = p.undo(ctx, err)
		}
	}()
	res := &Result{NetNS: p.nsPath}
	for _, r := range p.recs {
		p.log.Debug("cni add", "network", r.Name, "ifname", r.IfName)
		cur, err := cni.Add(ctx, p.c.PodDir, r)
		if err != nil {
			return nil, err
		}
		if r.Result, err = cur.MarshalJSON(); err != nil {
			return nil, fmt.Errorf("networking: network %q: result: %w", r.Name, err)
		}
		if err := cni.WriteRecord(p.c.PodDir, r); err != nil {
			return nil, err
		}
		res.Networks = append(res.Networks, Attachment{Name: r.Name, IfName: r.IfName, IPs: cni.PodIPs(cur, r.IfName), Result: cur})
	}
	return res, nil
}

// Undo undoes Prepare, for a caller that will not call Add (the pod could
// not be started).
func (p *Pending) Undo(ctx context.Context) error {
	defer p.unlock()
	if p.c.Nets.Host() {
		return nil
	}
	return p.undo(ctx, nil)
}

// undo tears down what Prepare and Add did, joining its errors to err.
// No host cleanup here: the caller holds the network lock shared, and the
// cleanup takes it exclusively.
func (p *Pending) undo(ctx context.Context, err error) error {
	if err != nil {
		p.log.Debug("undoing partial network setup", "error", err)
	}
	if uerr := teardown(context.WithoutCancel(ctx), p.c.PodDir, p.log, nil, false); uerr != nil {
		return errors.Join(err, fmt.Errorf("undo network setup: %w", uerr))
	}
	p.undone = true
	return err
}

// records loads every network and builds its record, without side effects.
func (c *Config) records() ([]*cni.Record, error) {
	loader := cni.Loader{LocalConfig: c.LocalConfig, SystemConfig: c.SystemConfig, IPAMDataDir: c.IPAMDataDir}
	if len(c.PluginDirs) == 0 {
		return nil, errdefs.InvalidArgument("networking: no CNI plugin directory given")
	}
	var pluginDirs []string
	for _, d := range c.PluginDirs {
		abs := filepath.Clean(d)
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(c.PodDir, abs)
		}
		if rel, err := filepath.Rel(c.PodDir, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			abs = rel
		}
		pluginDirs = append(pluginDirs, abs)
	}
	nsPath := filepath.Join(c.NetNSDir, NetNSPrefix+c.UUID)
	var recs []*cni.Record
	for i, n := range c.Nets {
		netw, err := loader.Load(n.Name)
		if err != nil {
			return nil, err
		}
		r := &cni.Record{
			Version:     cni.RecordVersion,
			Name:        n.Name,
			Index:       i,
			IfName:      fmt.Sprintf("eth%d", i),
			ContainerID: c.UUID,
			NetNS:       nsPath,
			Args:        cniArgs(n.Args),
			PluginDirs:  pluginDirs,
		}
		if i == 0 && len(c.Ports) > 0 {
			if netw, err = netw.WithPortMap(); err != nil {
				return nil, err
			}
			r.CapabilityArgs = map[string]any{"portMappings": c.Ports}
			r.PortClaimDir = c.PortClaimDir
		}
		r.Config = netw.Bytes()
		if err := cni.CheckPlugins(netw, r.PluginPaths(c.PodDir)); err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// cniArgs adds IgnoreUnknown=1, so that plugins which do not know a key
// given for another plugin of the chain do not fail.
func cniArgs(args [][2]string) [][2]string {
	if len(args) == 0 {
		return nil
	}
	for _, kv := range args {
		if kv[0] == "IgnoreUnknown" {
			return args
		}
	}
	return append([][2]string{{"IgnoreUnknown", "1"}}, args...)
}
