package download

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/progress"
	"github.com/nosecone/nscn/internal/version"
)

const (
	// firstBackoff is the wait before the first resume; it doubles with
	// each attempt that gets no further, up to maxBackoff.
	firstBackoff = 200 * time.Millisecond
	maxBackoff   = 5 * time.Second
	// maxRestarts bounds the immediate re-requests after a server sent an
	// unusable range, so a confused server cannot loop us.
	maxRestarts = 3
	copyBufSize = 64 << 10
)

// transfer is one download in progress: the request state and where the
// body goes. It is shared by Fetch (a file, with persisted meta) and Get
// (memory).
type transfer struct {
	client      *http.Client
	url         string // as given, for requests and the meta
	shown       string // redacted, for messages
	header      http.Header
	ifNoneMatch string
	maxSize     int64 // 0: no limit
	retries     int
	stall       time.Duration // 0: no limit
	log         *slog.Logger

	dst     sink
	meta    meta               // what dst holds; meaningful while dst.size() > 0
	persist func(m meta) error // nil: nothing to keep on disk

	// immutable: the URL's content never changes, so a range needs no
	// validator (Options.ContentAddressed).
	immutable bool

	progress io.Writer // nil: no bar
	label    string
	bar      *progress.Bar
}

// retryable marks a failure that resuming may get past. now asks for the
// next attempt without backoff (the server just sent a range we could not
// use, or a short one).
type retryable struct {
	err error
	now bool
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// run makes attempts until the object is complete, the error is final, or
// the retries are spent.
func (t *transfer) run(ctx context.Context) (*Result, error) {
	stuck, restarts := 0, 0
	maxAttempts := max(10, 3*(t.retries+1))
	for attempt := 1; ; attempt++ {
		res, moved, err := t.attempt(ctx, attempt)
		if err == nil {
			return res, nil
		}
		var again *retryable
		if !errors.As(err, &again) || ctx.Err() != nil {
			return nil, err
		}
		if moved > 0 {
			stuck = 0
		} else if !again.now {
			stuck++
		}
		if again.now && moved == 0 {
			restarts++
		}
		if stuck > t.retries || restarts > maxRestarts || attempt >= maxAttempts {
			return nil, fmt.Errorf("%w (gave up after %d attempts)", again.err, attempt)
		}
		if again.now {
			t.log.Debug("download continues at once", "url", t.shown, "offset", t.dst.size(), "reason", again.err)
			continue
		}
		delay := min(firstBackoff<<max(stuck-1, 0), maxBackoff)
		t.log.Debug("download broke, resuming", "url", t.shown, "offset", t.dst.size(), "delay", delay, "reason", again.err)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("wait to resume %s: %w", t.shown, ctx.Err())
		case <-timer.C:
		}
	}
}

// attempt makes one request and stores what it gets. moved counts the body
// bytes stored, for the retry budget.
func (t *transfer) attempt(ctx context.Context, n int) (res *Result, moved int64, err error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	offset := t.dst.size()
	if offset > 0 && t.meta.Validator == "" && !t.immutable {
		// Without a validator a range could splice two versions.
		t.log.Debug("object has no validator, starting over", "url", t.shown, "offset", offset)
		if err := t.dst.reset(); err != nil {
			return nil, 0, err
		}
		offset = 0
	}
	resp, err := t.do(actx, offset)
	if err != nil {
		if n > 1 && errors.Is(err, errdefs.ErrUnavailable) {
			err = &retryable{err: err}
		}
		return nil, 0, err
	}
	defer func() { _ = resp.Body.Close() }()

	next := t.meta
	var total int64 // complete length, -1 unknown
	switch resp.StatusCode {
	case http.StatusNotModified:
		if t.ifNoneMatch == "" {
			return nil, 0, statusError(t.shown, resp)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			etag = t.ifNoneMatch
		}
		return &Result{NotModified: true, ETag: etag, MaxAge: freshness(resp.Header), URL: resp.Request.URL.String()}, 0, nil

	case http.StatusOK:
		if offset > 0 {
			t.log.Debug("server sent the whole object, starting over", "url", t.shown, "offset", offset)
			if err := t.dst.reset(); err != nil {
				return nil, 0, err
			}
			offset = 0
		}
		total = resp.ContentLength
		next = meta{
			URL:       t.url,
			ETag:      resp.Header.Get("ETag"),
			Validator: rangeValidator(resp.Header),
			Size:      total,
		}

	case http.StatusPartialContent:
		if offset == 0 {
			return nil, 0, errdefs.Unavailable("get %s: server answered %s to a request without Range", t.shown, resp.Status)
		}
		first, _, complete, ok := parseContentRange(resp.Header.Get("Content-Range"))
		etag := resp.Header.Get("ETag")
		switch {
		case !ok || first != offset:
			return nil, 0, t.restart(fmt.Errorf("get %s: server sent range %q for bytes=%d-", t.shown, resp.Header.Get("Content-Range"), offset))
		case etag != "" && t.meta.ETag != "" && etag != t.meta.ETag,
			complete >= 0 && t.meta.Size >= 0 && complete != t.meta.Size:
			return nil, 0, t.restart(fmt.Errorf("get %s: object changed during the download", t.shown))
		}
		total = complete
		if total < 0 {
			total = t.meta.Size
		}
		next.Size = total

	case http.StatusRequestedRangeNotSatisfiable:
		if offset == 0 {
			return nil, 0, statusError(t.shown, resp)
		}
		_, _, complete, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if ok && complete == offset && (t.meta.Size < 0 || t.meta.Size == offset) {
			// The file was complete already; the kill came before
			// the cleanup.
			return t.result(resp), 0, nil
		}
		return nil, 0, t.restart(fmt.Errorf("get %s: server cannot continue at byte %d (%s)", t.shown, offset, resp.Status))

	default:
		err := statusError(t.shown, resp)
		if n > 1 && errors.Is(err, errdefs.ErrUnavailable) {
			err = &retryable{err: err}
		}
		return nil, 0, err
	}

	if t.maxSize > 0 && total > t.maxSize {
		return nil, 0, errdefs.InvalidArgument("get %s: object is %d bytes, over the limit of %d", t.shown, total, t.maxSize)
	}
	if t.persist != nil && next != t.meta {
		// Before any byte of this version lands, so that the data on
		// disk never outruns its validator.
		if err := t.persist(next); err != nil {
			return nil, 0, err
		}
	}
	t.meta = next
	t.showProgress(offset, total)

	moved, err = t.copyBody(actx, cancel, resp.Body)
	if err != nil {
		return nil, moved, err
	}
	switch got := t.dst.size(); {
	case total >= 0 && got < total:
		// A server may answer with a shorter range than asked; a
		// close-delimited body may just stop.
		err := errdefs.Unavailable("get %s: body ended at byte %d of %d", t.shown, got, total)
		return nil, moved, &retryable{err: err, now: resp.StatusCode == http.StatusPartialContent}
	case total >= 0 && got > total:
		err := errdefs.Unavailable("get %s: server sent %d bytes of a %d-byte object", t.shown, got, total)
		return nil, moved, t.restart(err)
	}
	return t.result(resp), moved, nil
}

// do sends the request: conditional on ifNoneMatch, and for the bytes from
// offset on (guarded by the validator) when offset > 0.
func (t *transfer) do(ctx context.Context, offset int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return nil, errdefs.InvalidArgument("build request for %s: %w", t.shown, err)
	}
	if t.header != nil {
		req.Header = t.header.Clone()
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "nscn/"+version.Version)
	}
	// A transparently decoded body would not match the server's offsets.
	req.Header.Set("Accept-Encoding", "identity")
	if t.ifNoneMatch != "" {
		req.Header.Set("If-None-Match", t.ifNoneMatch)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		if t.meta.Validator != "" {
			req.Header.Set("If-Range", t.meta.Validator)
		}
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, requestError(ctx, t.shown, err)
	}
	return resp, nil
}

// restart drops what the sink holds and asks for an immediate new attempt
// from byte zero because of cause.
func (t *transfer) restart(cause error) error {
	if err := t.dst.reset(); err != nil {
		return err
	}
	t.meta = meta{}
	return &retryable{err: errdefs.With(errdefs.ErrUnavailable, cause), now: true}
}

// copyBody stores the body, cancelling the attempt (through cancel) when it
// stalls. A read failure is retryable; a write failure is not.
func (t *transfer) copyBody(ctx context.Context, cancel context.CancelCauseFunc, body io.Reader) (moved int64, err error) {
	var stalled error
	if t.stall > 0 {
		stalled = fmt.Errorf("no data for %s", t.stall)
		timer := time.AfterFunc(t.stall, func() { cancel(stalled) })
		defer timer.Stop()
		body = &watchdog{r: body, timer: timer, d: t.stall}
	}
	body = t.bar.Wrap(body)
	buf := make([]byte, copyBufSize)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if t.maxSize > 0 && t.dst.size()+int64(n) > t.maxSize {
				return moved, errdefs.InvalidArgument("get %s: object is over the limit of %d bytes", t.shown, t.maxSize)
			}
			w, werr := t.dst.Write(buf[:n])
			moved += int64(w)
			if werr != nil {
				return moved, fmt.Errorf("store body of %s: %w", t.shown, werr)
			}
		}
		switch {
		case errors.Is(rerr, io.EOF):
			return moved, nil
		case rerr == nil:
			continue
		case ctx.Err() != nil && stalled != nil && errors.Is(context.Cause(ctx), stalled):
			return moved, &retryable{err: errdefs.Unavailable("read %s at byte %d: %w", t.shown, t.dst.size(), stalled)}
		case ctx.Err() != nil:
			// The caller's context: final.
			return moved, fmt.Errorf("read %s at byte %d: %w", t.shown, t.dst.size(), context.Cause(ctx))
		}
		return moved, &retryable{err: errdefs.Unavailable("read %s at byte %d: %w", t.shown, t.dst.size(), rerr)}
	}
}

// result describes the object now held, after resp.
func (t *transfer) result(resp *http.Response) *Result {
	etag := resp.Header.Get("ETag")
	if etag == "" {
		etag = t.meta.ETag
	}
	return &Result{
		ETag:   etag,
		MaxAge: freshness(resp.Header),
		Size:   t.dst.size(),
		URL:    resp.Request.URL.String(),
	}
}

// showProgress starts or updates the bar for a body from offset of total.
func (t *transfer) showProgress(offset, total int64) {
	if t.progress == nil {
		return
	}
	if t.bar == nil {
		t.bar = progress.New(t.progress, t.label, total)
	} else {
		t.bar.SetTotal(total)
	}
	t.bar.Set(offset)
}

// watchdog pushes the stall timer back whenever data arrives.
type watchdog struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (w *watchdog) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.timer.Reset(w.d)
	}
	return n, err
}
