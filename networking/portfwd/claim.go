package portfwd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// DefaultClaimDir holds the host-port claims. It is on tmpfs, so claims
// vanish with a reboot, like the forwarding rules they stand for.
const DefaultClaimDir = "/run/nscn/ports"

// A claim is a file <dir>/<protocol>-<port> holding this JSON. A host port
// is claimed whatever the host IP, since 0.0.0.0 overlaps every address.
type claim struct {
	UUID   string `json:"uuid"`
	PodDir string `json:"podDir"`
}

func claimName(m Mapping) string { return m.Protocol + "-" + strconv.Itoa(m.HostPort) }

// Claim takes the host ports of maps for the pod uuid, whose directory is
// podDir, before anything is set up. It fails with ErrAlreadyExists, taking
// nothing, when another live pod holds one of the ports, or when a host
// process has bound it (a best-effort probe: the port is bound for a
// moment). A claim whose pod directory has no network records any more is
// stale and taken over. Claiming ports the pod already holds succeeds.
func Claim(dir, uuid, podDir string, maps []Mapping) (err error) {
	if len(maps) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create port claim directory: %w", err)
	}
	var taken []string
	defer func() {
		if err != nil {
			for _, p := range taken {
				_ = os.Remove(p)
			}
		}
	}()
	data, err := json.Marshal(claim{UUID: uuid, PodDir: podDir})
	if err != nil {
		return err
	}
	for _, m := range maps {
		p := filepath.Join(dir, claimName(m))
		owner, err := readClaim(p)
		if err != nil {
			return err
		}
		switch {
		case owner == nil:
		case owner.UUID == uuid:
			continue
		case owner.alive():
			return errdefs.AlreadyExists("host port %s/%d is already forwarded to pod %s", m.Protocol, m.HostPort, owner.UUID)
		default:
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove stale port claim: %w", err)
			}
		}
		if err := probe(m); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644) //nolint:gosec // G304: nscn's own state file
		if errors.Is(err, os.ErrExist) {
			return errdefs.AlreadyExists("host port %s/%d is being claimed by another pod", m.Protocol, m.HostPort)
		}
		if err != nil {
			return fmt.Errorf("claim host port: %w", err)
		}
		taken = append(taken, p)
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("claim host port: %w", err)
		}
	}
	return nil
}

// Release drops every claim of the pod uuid in dir. It is idempotent.
func Release(dir, uuid string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release host ports: %w", err)
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		c, err := readClaim(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c != nil && c.UUID == uuid {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("release host port: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

func readClaim(p string) (*claim, error) {
	data, err := os.ReadFile(p) //nolint:gosec // G304: nscn's own state file
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read port claim: %w", err)
	}
	var c claim
	if json.Unmarshal(data, &c) != nil || c.UUID == "" {
		return &claim{UUID: "?"}, nil // unreadable: treat as stale
	}
	return &c, nil
}

// alive reports whether the claiming pod still has network records, i.e.
// has not been torn down. The pod directory moves between the state
// directories of <data dir>/pods/<state>/<uuid> (Documentation/stage1-abi.md)
// while its forwarding rules stay, so every state is looked at.
func (c *claim) alive() bool {
	if c.PodDir == "" || filepath.Base(c.PodDir) != c.UUID {
		return recordsIn(c.PodDir)
	}
	if recordsIn(c.PodDir) {
		return true
	}
	pods := filepath.Dir(filepath.Dir(c.PodDir))
	dirs, _ := filepath.Glob(filepath.Join(pods, "*", c.UUID))
	for _, d := range dirs {
		if recordsIn(d) {
			return true
		}
	}
	return false
}

func recordsIn(podDir string) bool {
	if podDir == "" {
		return false
	}
	matches, _ := filepath.Glob(filepath.Join(podDir, stage1abi.NetInfoDir, "*.json"))
	return len(matches) > 0
}

// probe fails when a host process has bound the port.
func probe(m Mapping) error {
	host := m.HostIP
	if host == "" {
		host = "0.0.0.0"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(m.HostPort))
	var err error
	switch m.Protocol {
	case "tcp":
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			_ = l.Close()
		}
	case "udp":
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			_ = c.Close()
		}
	default:
		return nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return errdefs.AlreadyExists("host port %s/%d is in use on the host", m.Protocol, m.HostPort)
	}
	// Other failures (an address the host does not have, say) are for the
	// portmap plugin to report.
	return nil
}
