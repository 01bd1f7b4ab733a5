package networking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/networking/cni"
)

// The CNI plugins leave shared bookkeeping on the host after the last DEL
// of a network: host-local's lock and last_reserved_ip files in its data
// directory, and the portmap plugin's CNI-HOSTPORT-* chains with the
// rules that jump to them. Every CNI runtime keeps them; nscn removes them
// once nothing uses them any more, so that a host where the last pod was
// collected looks as it did before the first one ran.
//
// Setup holds netLockPath shared while it runs CNI ADD, and the cleanup
// holds it exclusively, so no nscn pod is set up in between; host-local's
// own lock is held as well while its directory is inspected and removed.
// Other runtimes do not take nscn's lock: the chains are only removed when
// the DNAT chain holds no rule of anyone's.

// netLockPath serialises the cleanup against nscn's own network setups.
var netLockPath = "/run/nscn/net.lock"

// hostLocalDefaultDir is host-local's default data directory.
const hostLocalDefaultDir = "/var/lib/cni/networks"

// lockNet takes netLockPath, shared or exclusive (unix.LOCK_SH or
// LOCK_EX), and returns the function that releases it.
func lockNet(how int) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(netLockPath), 0o755); err != nil {
		return nil, fmt.Errorf("networking: lock: %w", err)
	}
	f, err := os.OpenFile(netLockPath, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("networking: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("networking: lock %s: %w", netLockPath, err)
	}
	return func() { _ = f.Close() }, nil
}

// cleanHost removes the bookkeeping of the networks in recs (the pod's
// records, after their DEL succeeded) that no pod uses any more.
func cleanHost(ctx context.Context, log *slog.Logger, recs []*cni.Record) error {
	if len(recs) == 0 {
		return nil
	}
	unlock, err := lockNet(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	portmap := false
	for _, r := range recs {
		if dir := hostLocalDir(r.Name, r.Config); dir != "" {
			if err := cleanHostLocalDir(dir); err != nil {
				errs = append(errs, err)
			}
		}
		if r.PortClaimDir != "" || strings.Contains(string(r.Config), `"portmap"`) {
			portmap = true
		}
	}
	if portmap {
		if err := cleanPortmapChains(ctx, log); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hostLocalDir returns host-local's directory of the network, "" when no
// plugin of the configuration list uses host-local IPAM.
func hostLocalDir(name string, conf json.RawMessage) string {
	var list struct {
		Plugins []struct {
			IPAM struct {
				Type    string `json:"type"`
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if json.Unmarshal(conf, &list) != nil || strings.ContainsAny(name, "/\x00") || name == "" || name == "." || name == ".." {
		return ""
	}
	for _, p := range list.Plugins {
		if p.IPAM.Type != "host-local" {
			continue
		}
		d := p.IPAM.DataDir
		if d == "" {
			d = hostLocalDefaultDir
		}
		return filepath.Join(d, name)
	}
	return ""
}

// isHostLocalBookkeeping reports whether a file of host-local's directory
// is its lock or a last-reserved record rather than a lease.
func isHostLocalBookkeeping(name string) bool {
	return name == "lock" || strings.HasPrefix(name, "last_reserved_ip")
}

// cleanHostLocalDir removes host-local's directory dir when it holds no
// lease, under host-local's own lock.
func cleanHostLocalDir(dir string) error {
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0) //nolint:gosec // G304: nscn's own state file
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("networking: clean %s: %w", dir, err)
	}
	defer func() { _ = lock.Close() }()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("networking: clean %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("networking: clean %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.IsDir() || !isHostLocalBookkeeping(e.Name()) {
			return nil // a lease: the network is in use
		}
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("networking: clean %s: %w", dir, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("networking: clean %s: %w", dir, err)
	}
	return nil
}

// portmapChains are the nat chains of the portmap plugin; the DNAT chain
// holds one jump per forwarded container.
var portmapChains = []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"}

// cleanPortmapChains removes the portmap chains, and the rules of the
// built-in chains that jump to them, when the DNAT chain forwards nothing.
func cleanPortmapChains(ctx context.Context, log *slog.Logger) error {
	out, err := iptables(ctx, "-t", "nat", "-S", portmapChains[0])
	if err != nil {
		return nil // no chain (or no iptables): nothing to clean
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "-A ") {
			return nil // someone's port is forwarded
		}
	}
	var errs []error
	for _, chain := range []string{"PREROUTING", "OUTPUT", "POSTROUTING"} {
		out, err := iptables(ctx, "-t", "nat", "-S", chain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, l := range strings.Split(out, "\n") {
			args, ok := jumpRule(l, chain)
			if !ok {
				continue
			}
			log.Debug("remove portmap jump", "rule", l)
			if _, err := iptables(ctx, append([]string{"-t", "nat", "-D", chain}, args...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, c := range portmapChains {
		if _, err := iptables(ctx, "-t", "nat", "-F", c); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range portmapChains {
		if _, err := iptables(ctx, "-t", "nat", "-X", c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// jumpRule parses a line of `iptables -S CHAIN` and returns the rule's
// arguments after "-A CHAIN" when it jumps to a portmap chain.
func jumpRule(line, chain string) ([]string, bool) {
	f, ok := splitRule(line)
	if !ok || len(f) < 4 || f[0] != "-A" || f[1] != chain {
		return nil, false
	}
	if f[len(f)-2] != "-j" || !strings.HasPrefix(f[len(f)-1], "CNI-HOSTPORT-") {
		return nil, false
	}
	return f[2:], true
}

// splitRule splits an `iptables -S` line into words, honouring the
// double quotes iptables puts around arguments with spaces (comments).
func splitRule(line string) ([]string, bool) {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && inQuote && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote, have = !inQuote, true
		case c == ' ' && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQuote {
		return nil, false
	}
	if have {
		out = append(out, cur.String())
	}
	return out, true
}

// iptables runs iptables with -w (wait for the xtables lock).
func iptables(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...) //nolint:gosec // G204: iptables, with arguments built here
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("networking: iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("networking: iptables %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}
