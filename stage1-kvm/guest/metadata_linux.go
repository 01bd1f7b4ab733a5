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

// StartMetadata starts serving the metadata API to the pod's apps at
// MetadataAddr (see MetadataProxy), for as long as the guest runs, when
// run wrote a MetadataConfigFile; without one it returns a nil channel at
// once. It brings the loopback interface up first (the pod's systemd
// would, later), listens, then fetches the pod's fixed answers from the
// host's service and asks itself once, so that the apps' first requests
// find the answers and the server's code warm: it returns when that is
// done (or failed: the answers are then fetched as the apps ask), and the
// agent says READY=1 only after it, which the apps of such a pod wait
// for. The channel gets the server's end. log gets the failures.
func StartMetadata(ctx context.Context, log io.Writer) (<-chan error, error) {
	b, err := os.ReadFile(MetadataConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cfg, err := ParseMetadataConfig(b)
	if err != nil {
		return nil, err
	}
	proxy, err := NewMetadataProxy(cfg.Upstream, log)
	if err != nil {
		return nil, err
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("metadata: bring lo up: %w", err)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", MetadataAddr)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
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
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	if err := proxy.Prefetch(pctx); err != nil {
		_, _ = fmt.Fprintln(log, "nscn-agent: metadata:", err)
		return done, nil
	}
	warm(ctx)
	// On the guest's console (kvm/console.log): when the apps' first
	// requests could find the answers.
	_, _ = fmt.Fprintf(log, "nscn-agent: metadata: the pod's answers fetched in %v\n", time.Since(start).Round(time.Millisecond))
	return done, nil
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
