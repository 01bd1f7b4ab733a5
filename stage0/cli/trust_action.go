//go:build !nscn_nofetch

package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/nosecone/nscn/internal/discover"
	"github.com/nosecone/nscn/internal/download"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pgp"
	"github.com/nosecone/nscn/internal/safetext"
)

func runTrust(c *cli.Context) error {
	g := globals(c)
	ks := &pgp.Keystore{LocalDir: g.LocalConfig, SystemDir: g.SystemConfig}
	if c.IsSet("format") && !c.Bool("list") {
		return usageErrorf("trust: --format only applies to --list")
	}
	switch {
	case c.Bool("list"):
		for _, f := range []string{"prefix", "root", "remove", "skip-fingerprint-review", "insecure-allow-http"} {
			if c.IsSet(f) {
				return usageErrorf("trust: --list cannot be combined with --%s", f)
			}
		}
		if c.NArg() > 0 {
			return usageErrorf("trust: --list takes no arguments")
		}
		return trustList(c.Context, g, ks, c.String("format"))
	case c.IsSet("remove"):
		for _, f := range []string{"skip-fingerprint-review", "insecure-allow-http"} {
			if c.IsSet(f) {
				return usageErrorf("trust: --remove cannot be combined with --%s", f)
			}
		}
		if c.NArg() > 0 {
			return usageErrorf("trust: --remove takes no arguments (flags go before arguments)")
		}
		if c.Bool("root") && c.String("prefix") != "" {
			return usageErrorf("trust: give --prefix or --root, not both")
		}
		return trustRemove(c.Context, g, ks, c.String("remove"), c.String("prefix"))
	}
	return trustAdd(c, g, ks)
}

// reviewedKey is a key read from an argument, waiting to be stored.
type reviewedKey struct {
	source      string
	data        []byte
	fingerprint string
	userIDs     []string
	// discovered keys came from the prefix's discovery page, over https
	// when https is set.
	discovered, https bool
}

func trustAdd(c *cli.Context, g *Globals, ks *pgp.Keystore) error {
	prefix, root := c.String("prefix"), c.Bool("root")
	switch {
	case c.NArg() == 0 && root:
		return usageErrorf("trust: a key file or URL is required with --root; keys are discovered only for a --prefix " +
			"(usage: nscn trust --prefix PREFIX [KEYFILE|URL...] or nscn trust --root KEYFILE|URL...)")
	case root && prefix != "":
		return usageErrorf("trust: give --prefix or --root, not both")
	case !root && prefix == "":
		return usageErrorf("trust: give --prefix PREFIX to trust the keys for the images below PREFIX, or --root to trust them for every image")
	case !root:
		if err := pgp.ValidatePrefix(prefix); err != nil {
			return err
		}
	}
	allowHTTP := c.Bool("insecure-allow-http") || g.Insecure.Pubkey

	// Read, parse and review every key before writing any, so that a
	// refusal leaves the keystore as it was.
	var keys []reviewedKey
	if c.NArg() == 0 {
		var err error
		if keys, err = discoverKeys(c.Context, g, prefix, allowHTTP); err != nil {
			return err
		}
	}
	for _, arg := range c.Args().Slice() {
		data, err := readKeyArg(c.Context, g, arg, allowHTTP)
		if err != nil {
			return err
		}
		fpr, ids, err := pgp.KeyInfo(data)
		if err != nil {
			return fmt.Errorf("key %s: %w", arg, err)
		}
		keys = append(keys, reviewedKey{source: arg, data: data, fingerprint: fpr, userIDs: ids})
	}
	answers := bufio.NewReader(g.Stdin)
	for _, k := range keys {
		switch {
		case c.Bool("skip-fingerprint-review"):
		case k.discovered && k.https && g.TrustKeysFromHTTPS && !g.Insecure.TLS:
			describeKey(g.Stderr, k, prefix)
			_, _ = fmt.Fprintln(g.Stderr, "Trusting it without the question: it was discovered over https and --trust-keys-from-https is given.")
		case k.discovered && !isTerminal(g.Stdin):
			describeKey(g.Stderr, k, prefix)
			return errdefs.FailedPrecondition("key %s discovered at %s not trusted: a discovered key is confirmed on a terminal, and stdin is not one; "+
				"once you have checked its fingerprint, trust it with --trust-keys-from-https (a global flag) or --skip-fingerprint-review; nothing was stored",
				pgp.FormatFingerprint(k.fingerprint), safetext.Escape(k.source))
		default:
			if err := reviewKey(g.Stderr, answers, k, prefix); err != nil {
				return err
			}
		}
	}
	for _, k := range keys {
		path, err := ks.StoreTrustedKey(c.Context, k.data, prefix, root)
		if err != nil {
			return fmt.Errorf("key %s: %w", k.source, err)
		}
		if root {
			_, _ = fmt.Fprintf(g.Stderr, "Trusted key %s as a root key, for every image.\n", pgp.FormatFingerprint(k.fingerprint))
		} else {
			_, _ = fmt.Fprintf(g.Stderr, "Trusted key %s for prefix %q.\n", pgp.FormatFingerprint(k.fingerprint), prefix)
		}
		if _, err := fmt.Fprintln(g.Stdout, path); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

// discoverKeys finds the keys of prefix by appc discovery and downloads
// them: over https, or http when allowHTTP.
func discoverKeys(ctx context.Context, g *Globals, prefix string, allowHTTP bool) ([]reviewedKey, error) {
	dc := &discover.Client{
		Download:     download.Options{InsecureTLS: g.Insecure.TLS},
		InsecureHTTP: g.Insecure.HTTP,
		Header:       loadAuth(g).Header,
		Log:          g.Log,
	}
	page, urls, err := dc.PublicKeys(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("trust: %w (or give the key file or URL)", err)
	}
	keys := make([]reviewedKey, 0, len(urls))
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, errdefs.InvalidArgument("trust: key URL %q discovered at %s is not an http(s) URL", safetext.Escape(raw), page)
		}
		if u.Scheme == "http" {
			if !allowHTTP {
				return nil, errdefs.PermissionDenied("trust: key %s discovered at %s is served over plain http, which is refused; "+
					"allow it with --insecure-allow-http or --insecure-options=pubkey", u.Redacted(), page)
			}
			_, _ = fmt.Fprintf(g.Stderr, "Warning: fetching key %s over plain http; anyone on the network path can replace it.\n", u.Redacted())
		}
		data, err := fetchKey(ctx, u, allowHTTP, g.Insecure.TLS)
		if err != nil {
			return nil, err
		}
		fpr, ids, err := pgp.KeyInfo(data)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", u.Redacted(), err)
		}
		keys = append(keys, reviewedKey{
			source: u.Redacted(), data: data, fingerprint: fpr, userIDs: ids,
			discovered: true, https: u.Scheme == "https",
		})
	}
	return keys, nil
}

// isTerminal reports whether r is a terminal, where a person can answer.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// describeKey shows on w the key to be trusted and where.
func describeKey(w io.Writer, k reviewedKey, prefix string) {
	if prefix == "" {
		_, _ = fmt.Fprintf(w, "Key %s is to be trusted as a ROOT key: it will be trusted for EVERY image.\n", safetext.Escape(k.source))
	} else {
		_, _ = fmt.Fprintf(w, "Key %s is to be trusted for prefix %q and the image names below it.\n", safetext.Escape(k.source), prefix)
	}
	_, _ = fmt.Fprintf(w, "Key fingerprint: %s\n", pgp.FormatFingerprint(k.fingerprint))
	for _, id := range k.userIDs {
		_, _ = fmt.Fprintf(w, "\tUser ID: %s\n", safetext.Escape(id))
	}
}

// reviewKey shows a key on w and asks on answers whether to trust it. Only
// "yes" or "y" returns nil.
func reviewKey(w io.Writer, answers *bufio.Reader, k reviewedKey, prefix string) error {
	describeKey(w, k, prefix)
	_, _ = fmt.Fprint(w, "Are you sure you want to trust this key (yes/no)? ")
	line, err := answers.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		_, _ = fmt.Fprintln(w)
		return errdefs.FailedPrecondition("key %s not trusted: no answer on stdin (to trust keys without the question, use --skip-fingerprint-review): %w",
			pgp.FormatFingerprint(k.fingerprint), err)
	}
	switch a := strings.ToLower(strings.TrimSpace(line)); a {
	case "yes", "y":
		return nil
	default:
		return errdefs.FailedPrecondition("key %s not trusted: the answer was %q, not yes; nothing was stored", pgp.FormatFingerprint(k.fingerprint), a)
	}
}

// readKeyArg reads a key from a path, a file:// URL or an http(s) URL.
func readKeyArg(ctx context.Context, g *Globals, arg string, allowHTTP bool) ([]byte, error) {
	if !strings.Contains(arg, "://") {
		return readKeyFile(arg)
	}
	u, err := url.Parse(arg)
	if err != nil {
		return nil, errdefs.InvalidArgument("key URL %q: %w", arg, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, errdefs.InvalidArgument("key URL %q: file URLs must name a local path (file:///path)", arg)
		}
		return readKeyFile(u.Path)
	case "https":
	case "http":
		if !allowHTTP {
			return nil, errdefs.PermissionDenied("key URL %s: fetching keys over plain http is refused; "+
				"use https, or allow it with --insecure-allow-http or --insecure-options=pubkey", u.Redacted())
		}
		_, _ = fmt.Fprintf(g.Stderr, "Warning: fetching key %s over plain http; anyone on the network path can replace it.\n", u.Redacted())
	default:
		return nil, errdefs.InvalidArgument("key URL %s: unsupported scheme %q (want https, http or file)", u.Redacted(), u.Scheme)
	}
	if g.Insecure.TLS {
		_, _ = fmt.Fprintf(g.Stderr, "Warning: not verifying the TLS certificate of %s (--insecure-options=tls).\n", u.Host)
	}
	return fetchKey(ctx, u, allowHTTP, g.Insecure.TLS)
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // G304: a key file the user named
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.With(errdefs.ErrNotFound, fmt.Errorf("read key: %w", err))
		}
		return nil, fmt.Errorf("read key: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, pgp.MaxKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	if len(data) > pgp.MaxKeySize {
		return nil, errdefs.InvalidArgument("read key %s: larger than %d bytes", path, pgp.MaxKeySize)
	}
	return data, nil
}

// fetchKey downloads a key over https (or http when allowed, including on
// redirects).
func fetchKey(ctx context.Context, u *url.URL, allowHTTP, insecureTLS bool) ([]byte, error) {
	shown := u.Redacted()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if insecureTLS {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it with --insecure-options=tls
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   keyFetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errdefs.Unavailable("stopped after 10 redirects")
			}
			if req.URL.Scheme != "https" && (req.URL.Scheme != "http" || !allowHTTP) {
				return errdefs.PermissionDenied("refusing redirect to %s: fetching keys over plain http is refused; "+
					"allow it with --insecure-allow-http or --insecure-options=pubkey", req.URL.Redacted())
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, errdefs.InvalidArgument("fetch key %s: %w", shown, err)
	}
	req.Header.Set("Accept", "application/pgp-keys, text/plain;q=0.9, */*;q=0.5")
	resp, err := client.Do(req)
	if err != nil {
		var certErr *tls.CertificateVerificationError
		switch {
		case errors.Is(err, errdefs.ErrPermissionDenied), errors.Is(err, errdefs.ErrUnavailable), ctx.Err() != nil:
			return nil, fmt.Errorf("fetch key %s: %w", shown, err)
		case errors.As(err, &certErr):
			return nil, errdefs.PermissionDenied("fetch key %s: the server's TLS certificate is not trusted "+
				"(skip the check with --insecure-options=tls): %w", shown, err)
		}
		return nil, errdefs.Unavailable("fetch key %s: %w", shown, err)
	}
	defer func() { _ = resp.Body.Close() }()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, errdefs.NotFound("fetch key %s: server answered %s", shown, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, errdefs.Unavailable("fetch key %s: server answered %s", shown, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, pgp.MaxKeySize+1))
	if err != nil {
		return nil, errdefs.Unavailable("fetch key %s: read body: %w", shown, err)
	}
	if len(data) > pgp.MaxKeySize {
		return nil, errdefs.InvalidArgument("fetch key %s: larger than %d bytes", shown, pgp.MaxKeySize)
	}
	return data, nil
}

// trustedKeyJSON is one key of "nscn trust --list --format=json".
type trustedKeyJSON struct {
	Prefix      string   `json:"prefix"`
	Root        bool     `json:"root"`
	Fingerprint string   `json:"fingerprint"`
	UserIDs     []string `json:"userIDs"`
	Source      string   `json:"source"`
	Masked      bool     `json:"masked"`
	Path        string   `json:"path"`
}

func trustList(ctx context.Context, g *Globals, ks *pgp.Keystore, format string) error {
	if format != "table" && !isJSONFormat(format) {
		return usageErrorf("trust: unknown --format %q (want table, json or json-pretty)", format)
	}
	keys, err := ks.List(ctx)
	if err != nil {
		return err
	}
	if isJSONFormat(format) {
		out := make([]trustedKeyJSON, 0, len(keys))
		for _, k := range keys {
			ids := k.UserIDs
			if ids == nil {
				ids = []string{}
			}
			out = append(out, trustedKeyJSON{
				Prefix: k.Prefix, Root: k.Root, Fingerprint: k.Fingerprint, UserIDs: ids,
				Source: string(k.Source), Masked: k.Masked, Path: k.Path,
			})
		}
		enc := json.NewEncoder(g.Stdout)
		if format == "json-pretty" {
			enc.SetIndent("", "  ")
		}
		enc.SetEscapeHTML(false) // user IDs are "Name <email>"
		if err := enc.Encode(out); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 8, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "PREFIX\tFINGERPRINT\tUSER ID\tSOURCE")
	for _, k := range keys {
		prefix := k.Prefix
		if k.Root {
			prefix = "(root)"
		}
		uid := ""
		if len(k.UserIDs) > 0 {
			uid = k.UserIDs[0]
		}
		if len(k.UserIDs) > 1 {
			uid += fmt.Sprintf(" (+%d)", len(k.UserIDs)-1)
		}
		source := string(k.Source)
		if k.Masked {
			source += " (masked)"
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", safetext.Escape(prefix), k.Fingerprint, safetext.Escape(uid), safetext.Escape(source))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func trustRemove(ctx context.Context, g *Globals, ks *pgp.Keystore, fingerprint, prefix string) error {
	if err := ks.Remove(ctx, fingerprint, prefix); err != nil {
		return err
	}
	if prefix == "" {
		_, _ = fmt.Fprintf(g.Stderr, "Key %s is no longer trusted as a root key.\n", pgp.FormatFingerprint(fingerprint))
	} else {
		_, _ = fmt.Fprintf(g.Stderr, "Key %s is no longer trusted for prefix %q.\n", pgp.FormatFingerprint(fingerprint), prefix)
	}
	return nil
}
