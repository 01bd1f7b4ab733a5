//go:build nscn_nofetch

package cli

// nscn's side of the split that fetchside_full.go describes: the commands
// that need the fetch side are handed, command line unchanged, to
// nscn-fetch, and run and prepare answer their images from the store
// alone (localimage), handing the command over only when it does not
// hold one. This file links none of the fetcher, the verifier or the
// registry client.

import (
	"context"
	"errors"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/stage0/localimage"
	"github.com/nosecone/nscn/stage0/prepare"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/tree"
)

// storeDecoders are none: a zstd OCI layer (an aci.ErrNoDecoder error) is
// rendered or extracted by nscn-fetch.
var storeDecoders aci.Decoders

// handingOver returns the action of a command that renders or extracts
// stored images, handing the command to nscn-fetch when it meets a layer
// it has no decoder for or a tree to hash with BLAKE3 (after the action's
// own cleanup ran).
func handingOver(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		return handOver(c.Context, action(c))
	}
}

// withFetchSide returns the action of a command that needs the fetch side:
// in nscn, one that hands the command to nscn-fetch.
func withFetchSide(cli.ActionFunc) cli.ActionFunc { return execFetch }

// fetchImages, runTrust and runConfig are nscn fetch, trust and config,
// which nscn-fetch runs.
func fetchImages(c *cli.Context) error { return execFetch(c) }
func runTrust(c *cli.Context) error    { return execFetch(c) }
func runConfig(c *cli.Context) error   { return execFetch(c) }

func execFetch(c *cli.Context) error { return execHelper(c.Context, FetchBinary) }

// handOver hands a run or prepare to nscn-fetch when the store does not
// hold one of its images, when one has a zstd layer to render, or when a
// tree must be rendered and hashed with BLAKE3, which nscn does not link
// (tree.ErrNoHasher: a run of rendered trees hashes nothing). Nothing
// was written yet: prepare fetches and renders every image before it
// creates the pod, and a render that fails leaves nothing behind.
func handOver(ctx context.Context, err error) error {
	if errors.Is(err, localimage.ErrNotStored) || errors.Is(err, aci.ErrNoDecoder) || errors.Is(err, tree.ErrNoHasher) {
		return execHelper(ctx, FetchBinary)
	}
	return err
}

// imageFetcher is the fetcher of run, prepare and app add: in nscn, the
// store alone. An OCI platform (--os, --arch) is checked and used only by
// the registry client: such a command goes to nscn-fetch whole.
func imageFetcher(ctx context.Context, g *Globals, s *store.Store, policy localimage.PullPolicy, osName, arch string) (prepare.Fetcher, error) {
	if osName != "" || arch != "" {
		return nil, execHelper(ctx, FetchBinary)
	}
	if g.Insecure.Image {
		// As newFetcher says it, once per command.
		g.Log.Warn("signature verification is disabled (--insecure-options=image)")
	}
	return &localimage.Resolver{Store: s, InsecureImage: g.Insecure.Image, PullPolicy: policy, Log: g.Log}, nil
}

// deferredLog returns a copy of g whose messages wait until flush: those
// of the fetch step, which nscn-fetch prints again when the command is
// handed over, and which nscn drops then.
func deferredLog(g *Globals) (*Globals, func()) {
	q := &logQueue{}
	d := *g
	d.Log = slog.New(deferredHandler{h: g.Log.Handler(), q: q})
	return &d, q.flush
}

// logQueue holds the records of a deferred logger, each with the handler
// (attributes, groups) it was logged through.
type logQueue struct {
	recs []queued
}

type queued struct {
	h slog.Handler
	r slog.Record
}

// flush hands the queued records to their handlers, once.
func (q *logQueue) flush() {
	for _, e := range q.recs {
		_ = e.h.Handle(context.Background(), e.r)
	}
	q.recs = nil
}

// deferredHandler queues what its handler would print.
type deferredHandler struct {
	h slog.Handler
	q *logQueue
}

func (d deferredHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, l)
}

func (d deferredHandler) Handle(_ context.Context, r slog.Record) error {
	d.q.recs = append(d.q.recs, queued{h: d.h, r: r.Clone()})
	return nil
}

func (d deferredHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return deferredHandler{h: d.h.WithAttrs(as), q: d.q}
}

func (d deferredHandler) WithGroup(name string) slog.Handler {
	return deferredHandler{h: d.h.WithGroup(name), q: d.q}
}
