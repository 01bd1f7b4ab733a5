// Package logstyle is the one style of the log records stage0 and every
// stage1 write on stderr: slog's text format (level=… msg=… key=value),
// with the time only under --debug, where it is the detail that matters,
// and each key at most once per record. Loggers are built up with With as
// they go down the call tree (pod=, app=, mode=), and a callee that
// names a key again (app=) would otherwise print it twice: the value
// given last wins, in the place the key first had.
package logstyle

import (
	"context"
	"io"
	"log/slog"
	"slices"
)

// New returns a logger writing to w at level; debug adds each record's
// time.
func New(w io.Writer, level slog.Level, debug bool) *slog.Logger {
	return slog.New(NewHandler(w, level, debug))
}

// NewHandler is the handler of New.
func NewHandler(w io.Writer, level slog.Level, debug bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if !debug {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}
	}
	return &handler{next: slog.NewTextHandler(w, opts)}
}

// handler keeps the attributes of With itself, so that Handle can merge
// them with the record's, keys once.
type handler struct {
	next  slog.Handler
	attrs []slog.Attr
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	attrs := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		attrs = merge(attrs, a)
		return true
	})
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(attrs...)
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	attrs := slices.Clone(h.attrs)
	for _, a := range as {
		attrs = merge(attrs, a)
	}
	return &handler{next: h.next, attrs: attrs}
}

// WithGroup hands the attributes so far to the text handler: keys in
// the group are the group's own.
func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{next: h.next.WithAttrs(h.attrs).WithGroup(name)}
}

// merge sets a in attrs: replacing the attribute of the same key, or
// appended.
func merge(attrs []slog.Attr, a slog.Attr) []slog.Attr {
	if a.Equal(slog.Attr{}) {
		return attrs
	}
	if i := slices.IndexFunc(attrs, func(o slog.Attr) bool { return o.Key == a.Key }); i >= 0 {
		attrs[i] = a
		return attrs
	}
	return append(attrs, a)
}
