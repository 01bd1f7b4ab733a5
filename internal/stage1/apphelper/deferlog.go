package apphelper

import (
	"context"
	"log/slog"
	"sync"
)

// deferLog returns a logger that keeps what it is given to log until
// flush is called, then passes it on to log's handler in order, each
// record with the time it was made, and from then on passes records on
// at once.
//
// The app's start logs a dozen debug lines (every mount of its /proc,
// each a write to the journal's stream and to run's FIFO, which wakes
// journald and run on the other CPU) between the shim's decision to
// start the app and the app's exec: with --debug, the window make bench
// measures the containment's cost in would mostly measure the logging.
// Without --debug no line is made, and a deferred one costs what a
// record's copy costs.
func deferLog(log *slog.Logger) (deferred *slog.Logger, flush func()) {
	q := &logQueue{}
	h := &deferredHandler{next: log.Handler(), q: q}
	return slog.New(h), q.flush
}

// logQueue is what a deferLog logger and its descendants (With) hold back.
type logQueue struct {
	mu      sync.Mutex
	flushed bool
	held    []heldRecord
}

type heldRecord struct {
	ctx context.Context //nolint:containedctx // handed to the handler at flush, as Handle would have had it
	h   slog.Handler
	r   slog.Record
}

// flush passes the held records on; under the lock, so that a record
// made meanwhile comes after them.
func (q *logQueue) flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range q.held {
		_ = e.h.Handle(e.ctx, e.r)
	}
	q.held, q.flushed = nil, true
}

// deferredHandler is deferLog's slog.Handler.
type deferredHandler struct {
	next slog.Handler
	q    *logQueue
}

func (h *deferredHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *deferredHandler) Handle(ctx context.Context, r slog.Record) error {
	h.q.mu.Lock()
	if !h.q.flushed {
		h.q.held = append(h.q.held, heldRecord{ctx: ctx, h: h.next, r: r.Clone()})
		h.q.mu.Unlock()
		return nil
	}
	h.q.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *deferredHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &deferredHandler{next: h.next.WithAttrs(attrs), q: h.q}
}

func (h *deferredHandler) WithGroup(name string) slog.Handler {
	return &deferredHandler{next: h.next.WithGroup(name), q: h.q}
}
