package networking

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/networking/cni"
	"github.com/nosecone/nscn/networking/netns"
	"github.com/nosecone/nscn/networking/portfwd"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TeardownOption changes how Teardown runs.
type TeardownOption func(*teardownOptions)

type teardownOptions struct {
	log        *slog.Logger
	pluginDirs []string
}

// WithLogger makes Teardown log its steps to l at debug level.
func WithLogger(l *slog.Logger) TeardownOption {
	return func(o *teardownOptions) { o.log = l }
}

// WithPluginDirs makes Teardown look for the CNI plugins in dirs instead
// of the directories recorded by Setup.
func WithPluginDirs(dirs ...string) TeardownOption {
	return func(o *teardownOptions) { o.pluginDirs = dirs }
}

// Teardown undoes Setup for the pod directory podDir, using only what Setup
// recorded there: it runs CNI DEL for each recorded network, in reverse
// order (releasing IPAM leases and removing forwarding and masquerading
// rules), drops the pod's host-port claims, and unmounts and removes the
// namespace pin. It is idempotent, and it works after the pod was killed,
// after Setup was interrupted, and when the namespace pin has vanished (a
// reboot, a lost mount): DEL then runs without a namespace.
//
// A failing DEL does not stop the rest; its record is kept so that a later
// Teardown retries it, and the errors are returned joined.
func Teardown(ctx context.Context, podDir string, opts ...TeardownOption) error {
	o := teardownOptions{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	abs, err := filepath.Abs(podDir)
	if err != nil {
		return fmt.Errorf("networking: pod directory: %w", err)
	}
	return teardown(ctx, abs, o.log, o.pluginDirs, true)
}

// teardown is Teardown; cleanHost also removes the host's CNI bookkeeping
// the pod's networks no longer need (hostclean.go).
func teardown(ctx context.Context, podDir string, log *slog.Logger, pluginDirs []string, cleanHostToo bool) error {
	recs, err := cni.ReadRecords(podDir)
	if err != nil {
		return fmt.Errorf("networking: %w", err)
	}
	nsPath, err := readNetNSFile(podDir)
	if err != nil {
		return err
	}
	if nsPath == "" && len(recs) > 0 {
		nsPath = recs[0].NetNS
	}
	if nsPath != "" {
		if err := checkNetNSPath(nsPath); err != nil {
			return err
		}
	}
	alive := false
	if nsPath != "" {
		if alive, err = netns.IsNetNS(nsPath); err != nil {
			return fmt.Errorf("networking: %w", err)
		}
	}
	log.Debug("network teardown", "netns", nsPath, "netns_alive", alive, "networks", len(recs))

	var errs []error
	var deleted []*cni.Record
	claimDirs := map[string]string{} // dir -> uuid
	for _, r := range slices.Backward(recs) {
		if pluginDirs != nil {
			r.PluginDirs = pluginDirs
		}
		log.Debug("cni del", "network", r.Name, "ifname", r.IfName)
		if err := cni.Del(ctx, podDir, r, alive); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, r)
		if r.PortClaimDir != "" {
			claimDirs[r.PortClaimDir] = r.ContainerID
		}
		if err := cni.RemoveRecord(podDir, r.Name); err != nil {
			errs = append(errs, err)
		}
	}
	for dir, uuid := range claimDirs {
		if err := portfwd.Release(dir, uuid); err != nil {
			errs = append(errs, err)
		}
	}
	if nsPath != "" {
		log.Debug("remove network namespace", "netns", nsPath)
		if err := netns.Remove(nsPath); err != nil {
			errs = append(errs, fmt.Errorf("networking: %w", err))
		} else if err := os.Remove(filepath.Join(podDir, stage1abi.NetNSFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("networking: %w", err))
		}
	}
	if len(errs) == 0 {
		// Bookkeeping only: a failure is worth a warning, not a failed gc.
		if cleanHostToo {
			if err := cleanHost(ctx, log, deleted); err != nil {
				log.Warn("clean the host's CNI bookkeeping", "error", err)
			}
		}
		if err := os.RemoveAll(cni.CacheDir(podDir)); err != nil {
			errs = append(errs, fmt.Errorf("networking: %w", err))
		}
		// Only succeeds when empty; other files are not ours to remove.
		if err := os.Remove(filepath.Join(podDir, stage1abi.NetInfoDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Debug("net-info directory kept", "error", err)
		}
	}
	return errors.Join(errs...)
}

func readNetNSFile(podDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(podDir, stage1abi.NetNSFile)) //nolint:gosec // G304: a file in the pod directory
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("networking: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// checkNetNSPath refuses a recorded namespace path that Setup would not
// have made, so a tampered pod directory cannot make Teardown unmount or
// delete an arbitrary file.
func checkNetNSPath(p string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || !strings.HasPrefix(filepath.Base(p), NetNSPrefix) {
		return errdefs.InvalidArgument("networking: recorded netns path %q is not one nscn makes", p)
	}
	return nil
}
