// Package discover implements appc image and key discovery
// (https://github.com/appc/spec/blob/v0.8.11/spec/discovery.md): it fetches
// https://NAME?ac-discovery=1, walking up the name's path while nothing is
// found, reads the ac-discovery and ac-discovery-pubkeys meta tags whose
// prefix covers the name, and renders the image templates into the URLs of
// the image and its signature.
//
// It only finds URLs: it does not download images or keys, verify
// signatures or decide trust (stage0/fetch and the CLI do). Plain http is
// used only when the caller allows it (--insecure-options=http), as a
// fallback for a page https did not give and for templates that render
// to http. It runs in stage0 and needs no privileges.
//
// The appc module's own discovery package does the same walk but takes no
// context, reads pages without a size bound and matches prefixes as plain
// strings; this package fixes those, and keeps its requests on the
// internal/download client (redirect and TLS policy, error classes).
package discover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/download"
	"github.com/nosecone/nscn/internal/errdefs"
)

// maxPageSize bounds a discovery page: the tags are in its head.
const maxPageSize = 1 << 20

// DefaultVersion fills {version} when no version label is asked for.
const DefaultVersion = "latest"

// Client walks discovery pages. Each page is fetched at most once per
// Client, so that image and key discovery of one name, or of several
// names under one host, share the requests. A Client is not safe for
// concurrent use.
type Client struct {
	// Download tunes the requests: TLS, a replacement http.Client for
	// tests, headers (auth.d). Its InsecureHTTP is ignored: see
	// InsecureHTTP.
	Download download.Options
	// InsecureHTTP allows plain http: a page that https did not give is
	// asked for over http, and templates rendering to http are kept.
	InsecureHTTP bool
	// Header, when set, gives the headers (credentials of auth.d) of an
	// https request to a host (host or host:port); they are never sent
	// over plain http.
	Header func(host string) map[string][]string
	Log    *slog.Logger

	pages map[string]*page
}

// page is one discovery page fetched, or why it could not be.
type page struct {
	url   string
	metas []Meta
	err   error
}

// Image is what image discovery found.
type Image struct {
	// Page is the discovery URL whose tags gave the endpoints.
	Page string
	// Endpoints are the image and signature URLs, in the page's order;
	// try them in turn.
	Endpoints []Endpoint
	// PublicKeys are the key URLs the same page gives for the name.
	PublicKeys []string
}

// Vars returns the template variables for labels: the labels themselves,
// version "latest" when absent, and the host's os and arch (in appc's
// spelling, aarch64 for arm64) when absent.
func Vars(labels map[string]string) map[string]string {
	v := make(map[string]string, len(labels)+3)
	for k, x := range labels {
		v[k] = x
	}
	if v["version"] == "" {
		v["version"] = DefaultVersion
	}
	goarm := ""
	if runtime.GOARCH == "arm" {
		goarm = "7"
	}
	if os, arch, err := types.ToAppcOSArch(runtime.GOOS, runtime.GOARCH, goarm); err == nil {
		if v["os"] == "" {
			v["os"] = os
		}
		if v["arch"] == "" {
			v["arch"] = arch
		}
	}
	return v
}

// Image discovers where the image name with labels is: the first page of
// the walk (name, then its parents) with image tags covering name. vars
// are the template variables (see Vars).
//
// Errors: errdefs.ErrNotFound when no page has a tag for the name (the
// message lists what was tried); errdefs.ErrPermissionDenied when the
// only tags found render to plain http without InsecureHTTP, or when a
// page could not be had over TLS; errdefs.ErrInvalidArgument when the
// tags found cannot be rendered.
func (c *Client) Image(ctx context.Context, name string, vars map[string]string) (*Image, error) {
	var found *Image
	var skipped []error
	err := c.walk(ctx, name, "ac-discovery tag", func(p *page) bool {
		eps, skip := Endpoints(p.metas, name, vars)
		if len(eps) == 0 && len(skip) == 0 {
			return false
		}
		im := &Image{Page: p.url, PublicKeys: PublicKeys(p.metas, name)}
		for _, ep := range eps {
			if !c.InsecureHTTP && (isHTTP(ep.ACI) || isHTTP(ep.ASC)) {
				skip = append(skip, errdefs.PermissionDenied("template renders to plain http %s (allowed with --insecure-options=http)", ep.ACI))
				continue
			}
			im.Endpoints = append(im.Endpoints, ep)
		}
		found, skipped = im, skip
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("discover image %s: %w", name, err)
	}
	for _, s := range skipped {
		c.logger().Debug("discovery template skipped", "image", name, "page", found.Page, "reason", s)
	}
	if len(found.Endpoints) == 0 {
		class := errdefs.ErrInvalidArgument
		if errors.Is(skipped[0], errdefs.ErrPermissionDenied) {
			class = errdefs.ErrPermissionDenied
		}
		return nil, errdefs.Newf(class, "discover image %s: no usable template at %s: %w", name, found.Page, skipped[0])
	}
	return found, nil
}

// PublicKeys discovers the key URLs for name: those of the first page of
// the walk with key tags covering it. The URLs are as the page gives them;
// the caller decides which schemes it accepts. Errors are classified as
// Image's.
func (c *Client) PublicKeys(ctx context.Context, name string) (pageURL string, keys []string, err error) {
	err = c.walk(ctx, name, "ac-discovery-pubkeys tag", func(p *page) bool {
		keys = PublicKeys(p.metas, name)
		pageURL = p.url
		return len(keys) > 0
	})
	if err != nil {
		return "", nil, fmt.Errorf("discover keys of %s: %w", name, err)
	}
	return pageURL, keys, nil
}

// walk fetches the discovery pages of name and its parents, longest
// first, until done accepts one. what names the tag looked for, in the
// error that lists the attempts when none is accepted.
func (c *Client) walk(ctx context.Context, name, what string, done func(*page) bool) error {
	if err := checkName(name); err != nil {
		return err
	}
	parts := strings.Split(name, "/")
	var tried []string
	var denied, unavailable bool
	for end := len(parts); end > 0; end-- {
		p := c.page(ctx, strings.Join(parts[:end], "/"))
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.err != nil {
			tried = append(tried, p.err.Error())
			denied = denied || errors.Is(p.err, errdefs.ErrPermissionDenied)
			unavailable = unavailable || errors.Is(p.err, errdefs.ErrUnavailable)
			continue
		}
		if done(p) {
			return nil
		}
		tried = append(tried, p.url+": no "+what+" for "+name)
	}
	hint := ""
	if !c.InsecureHTTP {
		hint = " (discovery pages are fetched over https only; plain http needs --insecure-options=http)"
	}
	// The class says what to do about it: a refused certificate, a
	// server to retry later, or a name nobody publishes.
	class := errdefs.ErrNotFound
	switch {
	case denied:
		class = errdefs.ErrPermissionDenied
	case unavailable:
		class = errdefs.ErrUnavailable
	}
	return errdefs.Newf(class, "nothing found%s: %s", hint, strings.Join(tried, "; "))
}

// checkName refuses what is not an AC name before it becomes a URL's host
// and path.
func checkName(name string) error {
	if _, err := types.NewACIdentifier(name); err != nil {
		return errdefs.InvalidArgument("image name %q: %v", name, err)
	}
	return nil
}

// page fetches the discovery page of prefix over https, then over http
// when that is allowed and https failed, remembering the outcome.
func (c *Client) page(ctx context.Context, prefix string) *page {
	if p, ok := c.pages[prefix]; ok {
		return p
	}
	p := c.get(ctx, pageURL("https", prefix))
	if p.err != nil && c.InsecureHTTP && ctx.Err() == nil {
		c.logger().Debug("discovery over https failed; trying http", "url", p.url, "error", p.err)
		if hp := c.get(ctx, pageURL("http", prefix)); hp.err == nil {
			p = hp
		} else {
			p.err = fmt.Errorf("%w; over http: %w", p.err, hp.err)
		}
	}
	if ctx.Err() == nil {
		if c.pages == nil {
			c.pages = map[string]*page{}
		}
		c.pages[prefix] = p
	}
	return p
}

func (c *Client) get(ctx context.Context, u string) *page {
	opts := c.Download
	opts.InsecureHTTP = c.InsecureHTTP
	opts.MaxSize = maxPageSize
	opts.Progress = nil
	if pu, err := url.Parse(u); err == nil && pu.Scheme == "https" && c.Header != nil {
		opts.Header = c.Header(pu.Host)
	}
	body, err := download.Get(ctx, u, opts)
	if err != nil {
		return &page{url: u, err: err}
	}
	metas := ParseMeta(bytes.NewReader(body))
	c.logger().Debug("discovery page", "url", u, "tags", len(metas))
	return &page{url: u, metas: metas}
}

// pageURL is the discovery URL of a name or one of its parents.
func pageURL(scheme, prefix string) string {
	return scheme + "://" + prefix + "?ac-discovery=1"
}

func isHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "http"
}

func (c *Client) logger() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}
