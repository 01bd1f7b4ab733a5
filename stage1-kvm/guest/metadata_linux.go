package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/vishvananda/netlink"
)

// ServeMetadata serves the metadata API to the pod's apps at MetadataAddr
// (see MetadataProxy) for as long as the guest runs, when run wrote a
// MetadataConfigFile; it returns nil at once otherwise. It brings the
// loopback interface up first (the pod's systemd would, later), listens,
// then fetches the pod's fixed answers from the host's service and asks
// itself once, so that the apps' first requests find the answers and the
// server's code warm. log gets the failures.
func ServeMetadata(ctx context.Context, log io.Writer) error {
	b, err := os.ReadFile(MetadataConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg, err := ParseMetadataConfig(b)
	if err != nil {
		return err
	}
	proxy, err := NewMetadataProxy(cfg.Upstream, log)
	if err != nil {
		return err
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("metadata: bring lo up: %w", err)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", MetadataAddr)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	srv := &http.Server{
		Handler:           proxy,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		start := time.Now()
		if err := proxy.Prefetch(pctx); err != nil {
			_, _ = fmt.Fprintln(log, "nscn-agent: metadata:", err)
			return
		}
		warm(ctx)
		// On the guest's console (kvm/console.log): when the apps'
		// first requests could find the answers.
		_, _ = fmt.Fprintf(log, "nscn-agent: metadata: the pod's answers fetched in %v\n", time.Since(start).Round(time.Millisecond))
	}()
	return srv.Serve(l)
}

// warm asks the server for the pod's UUID once, from memory by now:
// under emulation the first run of the server's code is what costs.
func warm(ctx context.Context) {
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, MetadataURL+metadataV1+"pod/uuid", nil)
	if err != nil {
		return
	}
	if resp, err := c.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}
