package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// pullClientCmd is the hidden first argument that makes nscn-bench the
// pull figure's reference client (pullClientMain) instead of the bench.
const pullClientCmd = "pull-client"

// pullClientMain is `nscn-bench pull-client [-store DIR] URL…`: GET every
// URL at once with Go's HTTP client, as nscn's fetch does, and discard the
// bodies (the floor's download), or, with -store, do what any puller that
// verifies and keeps what it downloads must do besides: hash each body
// with sha256 as it streams into a file DIR/<hex>, fsync it, and check the
// hash against the digest the URL ends with (registry blob URLs do). It
// runs as a process of its own, so that hyperfine times it in the same
// invocation as nscn, with a process start and fresh connections like
// nscn's.
func pullClientMain(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet(pullClientCmd, flag.ContinueOnError)
	store := fs.String("store", "", "hash each blob and write it into this directory, instead of discarding it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "nscn-bench pull-client: no URL")
		return 2
	}
	if err := pullAll(ctx, fs.Args(), *store); err != nil {
		fmt.Fprintf(os.Stderr, "nscn-bench pull-client: %v\n", err)
		return 1
	}
	return 0
}

// pullAll downloads every URL at once (see pullClientMain).
func pullAll(ctx context.Context, urls []string, store string) error {
	if store != "" {
		if err := os.MkdirAll(store, 0o755); err != nil {
			return err
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = len(urls)
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() { errs[i] = pullOne(ctx, client, u, store) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func pullOne(ctx context.Context, client *http.Client, url, store string) (err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if store == "" {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	want, ok := strings.CutPrefix(path.Base(url), "sha256:")
	if !ok {
		return fmt.Errorf("%s does not end with a sha256 digest", url)
	}
	f, err := os.OpenFile(filepath.Join(store, filepath.Base(want)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644) //nolint:gosec // G304: the bench's own scratch directory
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	h := sha256.New()
	// 64 KiB a read, as nscn's download (internal/download).
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), resp.Body, make([]byte, 64<<10)); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("GET %s: the body hashes to sha256:%s", url, got)
	}
	return nil
}
