package apiservice

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/podlog"
	"github.com/nosecone/nscn/stage0/applog"
	"github.com/nosecone/nscn/stage0/podview"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/index"
)

// APIVersion is the version of the v1alpha API this service implements,
// as GetInfo reports it.
const APIVersion = "1.0.0-alpha"

// stopGrace is how long Serve waits for unary calls in flight at
// shutdown before it closes every connection.
const stopGrace = 5 * time.Second

// Config configures a Server.
type Config struct {
	// DataDir is nscn's data directory (--dir).
	DataDir string
	// Store is the image store of DataDir, opened for reading.
	Store *store.Store
	// Info is what GetInfo answers (versions and global flags).
	Info *v1alpha.Info
	// PollInterval is how often events are looked for
	// (DefaultPollInterval when 0).
	PollInterval time.Duration
	Log          *slog.Logger
}

// Server implements v1alpha.PublicAPIServer.
type Server struct {
	v1alpha.UnimplementedPublicAPIServer

	cfg     Config
	watcher *Watcher
	// stopping is closed when Serve's context is done: streams end.
	stopping chan struct{}
	stopOnce sync.Once
}

var _ v1alpha.PublicAPIServer = (*Server)(nil)

// NewServer returns a Server of cfg.
func NewServer(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:      cfg,
		watcher:  NewWatcher(cfg.DataDir, cfg.Store, cfg.PollInterval, cfg.Log),
		stopping: make(chan struct{}),
	}
}

// Serve answers calls on every listener until ctx is done, then stops:
// open streams (events, followed logs) end, unary calls in flight get
// stopGrace to finish, and the listeners are closed (which removes a
// Unix socket Go created). ready, if not nil, is called once the
// listeners accept calls and the event watcher took its first look.
func (s *Server) Serve(ctx context.Context, ls []net.Listener, ready func()) error {
	if len(ls) == 0 {
		return errdefs.InvalidArgument("api service: nothing to listen on")
	}
	gs := grpc.NewServer()
	v1alpha.RegisterPublicAPIServer(gs, s)

	wctx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		s.watcher.Run(wctx)
	}()
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- gs.Serve(l) }()
		s.cfg.Log.Info("api service listening", "address", l.Addr().String(), "network", l.Addr().Network())
	}
	if ready != nil {
		ready()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("api service: %w", err)
	}
	s.stopOnce.Do(func() { close(s.stopping) })
	stopWatch()
	<-watched
	done := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopGrace):
		gs.Stop()
		<-done
	}
	return err
}

// streamContext is a stream's context, also done when the server stops.
func (s *Server) streamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// grpcError gives err the gRPC code of its errdefs class.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, errdefs.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, errdefs.ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, errdefs.ErrPermissionDenied), errors.Is(err, fs.ErrPermission):
		code = codes.PermissionDenied
	case errors.Is(err, errdefs.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, errdefs.ErrAlreadyExists):
		code = codes.AlreadyExists
	case errors.Is(err, errdefs.ErrNotImplemented):
		code = codes.Unimplemented
	}
	return status.Error(code, err.Error())
}

// GetInfo answers the versions and the global flags.
func (s *Server) GetInfo(context.Context, *v1alpha.GetInfoRequest) (*v1alpha.GetInfoResponse, error) {
	return &v1alpha.GetInfoResponse{Info: s.cfg.Info}, nil
}

// imagesByID reads the store's images, by full ID.
func (s *Server) imagesByID(ctx context.Context) (map[string]*index.Image, error) {
	ims, err := s.cfg.Store.Images(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*index.Image, len(ims))
	for _, im := range ims {
		out[im.ID] = im
	}
	return out, nil
}

// pod reads one pod as the API shows it.
func (s *Server) pod(ctx context.Context, p *pod.Pod, images map[string]*index.Image) (*v1alpha.Pod, error) {
	v, warnings, err := podview.Read(ctx, p, true)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		s.cfg.Log.Debug("read pod", "pod", p.UUID, "err", w)
	}
	return s.toPod(ctx, p, &v, images)
}

func (s *Server) toPod(ctx context.Context, p *pod.Pod, v *podview.View, images map[string]*index.Image) (*v1alpha.Pod, error) {
	f := podFacts{images: images}
	if v.State == pod.Running {
		// The cgroup its stage1 recorded is the pod's for its whole
		// life; the process's own moves as the pod starts.
		c, err := p.Cgroup(ctx)
		if err != nil {
			c = cgroupOf(v.PID)
		}
		f.cgroup = c
	}
	if v.State == pod.ExitedGarbage || v.State == pod.Garbage || v.State == pod.Deleting {
		if t, err := p.GCMarked(ctx); err == nil {
			f.gcMarked = t
		}
	}
	return toPod(v, f)
}

// ListPods lists the pods the filters select.
func (s *Server) ListPods(ctx context.Context, req *v1alpha.ListPodsRequest) (*v1alpha.ListPodsResponse, error) {
	pods, err := pod.List(ctx, s.cfg.DataDir)
	if err != nil {
		return nil, grpcError(err)
	}
	views, err := podview.ReadAll(ctx, pods, true, func(w error) { s.cfg.Log.Debug("list pods", "err", w) })
	if err != nil {
		return nil, grpcError(err)
	}
	var images map[string]*index.Image
	if req.Detail {
		if images, err = s.imagesByID(ctx); err != nil {
			return nil, grpcError(err)
		}
	}
	byUUID := make(map[string]*pod.Pod, len(pods))
	for _, p := range pods {
		byUUID[p.UUID] = p
	}
	resp := &v1alpha.ListPodsResponse{}
	for i := range views {
		out, err := s.toPod(ctx, byUUID[views[i].UUID], &views[i], images)
		if err != nil {
			return nil, grpcError(err)
		}
		if !podSelected(req.Filters, out) {
			continue
		}
		if !req.Detail {
			summarize(out)
		}
		resp.Pods = append(resp.Pods, out)
	}
	return resp, nil
}

// InspectPod describes one pod, named by UUID or unambiguous prefix.
func (s *Server) InspectPod(ctx context.Context, req *v1alpha.InspectPodRequest) (*v1alpha.InspectPodResponse, error) {
	p, err := pod.Get(ctx, s.cfg.DataDir, req.Id)
	if err != nil {
		return nil, grpcError(err)
	}
	images, err := s.imagesByID(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	out, err := s.pod(ctx, p, images)
	if err != nil {
		return nil, grpcError(err)
	}
	return &v1alpha.InspectPodResponse{Pod: out}, nil
}

// ListImages lists the images the filters select, oldest import first.
func (s *Server) ListImages(ctx context.Context, req *v1alpha.ListImagesRequest) (*v1alpha.ListImagesResponse, error) {
	ims, err := s.cfg.Store.Images(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &v1alpha.ListImagesResponse{}
	for _, im := range ims {
		out := toImage(im)
		if !imageSelected(req.Filters, out) {
			continue
		}
		if !req.Detail {
			out.Manifest = nil
		}
		resp.Images = append(resp.Images, out)
	}
	return resp, nil
}

// InspectImage describes one image, named by ID, key or unambiguous
// prefix.
func (s *Server) InspectImage(ctx context.Context, req *v1alpha.InspectImageRequest) (*v1alpha.InspectImageResponse, error) {
	if req.Id == "" {
		return nil, status.Error(codes.InvalidArgument, "inspect image: no image ID")
	}
	im, err := s.cfg.Store.Get(ctx, req.Id)
	if err != nil {
		return nil, grpcError(err)
	}
	return &v1alpha.InspectImageResponse{Image: toImage(im)}, nil
}

// ListenEvents streams the events the filter selects: first those seen
// since since_time (when set), then new ones as they are seen, until
// until_time, the client leaves or the server stops.
func (s *Server) ListenEvents(req *v1alpha.ListenEventsRequest, stream grpc.ServerStreamingServer[v1alpha.ListenEventsResponse]) error {
	ctx, cancel := s.streamContext(stream.Context())
	defer cancel()
	f := req.Filter
	var since, until int64
	if f != nil {
		since, until = f.SinceTime, f.UntilTime
	}
	if until > 0 {
		var c context.CancelFunc
		ctx, c = context.WithDeadline(ctx, time.Unix(until, 0))
		defer c()
	}
	keep := func(events []*v1alpha.Event, replay bool) []*v1alpha.Event {
		var out []*v1alpha.Event
		for _, e := range events {
			if (replay && since == 0) || (since > 0 && e.Time < since) || (until > 0 && e.Time >= until) {
				continue
			}
			if eventSelected(f, e) {
				out = append(out, e)
			}
		}
		return out
	}
	past, batches, unsubscribe := s.watcher.Subscribe()
	defer unsubscribe()
	// Headers now: the client knows it is subscribed before any event.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	if evs := keep(past, true); len(evs) > 0 {
		if err := stream.Send(&v1alpha.ListenEventsResponse{Events: evs}); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			if stream.Context().Err() != nil {
				return grpcError(stream.Context().Err())
			}
			return nil // until_time, or the server stops
		case b, ok := <-batches:
			if !ok {
				select {
				case <-s.stopping:
					return nil
				default:
				}
				return status.Error(codes.ResourceExhausted, "listen events: the client fell too far behind")
			}
			if evs := keep(b, false); len(evs) > 0 {
				if err := stream.Send(&v1alpha.ListenEventsResponse{Events: evs}); err != nil {
					return err
				}
			}
		}
	}
}

// GetLogs streams the lines of a pod's apps (package applog), one
// response per line; with follow until the pod exits.
func (s *Server) GetLogs(req *v1alpha.GetLogsRequest, stream grpc.ServerStreamingServer[v1alpha.GetLogsResponse]) error {
	ctx, cancel := s.streamContext(stream.Context())
	defer cancel()
	if req.PodId == "" {
		return status.Error(codes.InvalidArgument, "get logs: no pod ID")
	}
	p, err := pod.Get(ctx, s.cfg.DataDir, req.PodId)
	if err != nil {
		return grpcError(err)
	}
	o := applog.Options{App: req.AppName, Follow: req.Follow, Lines: int(req.Lines)}
	if req.SinceTime > 0 {
		o.Since = time.Unix(req.SinceTime, 0)
	}
	if req.UntilTime > 0 {
		o.Until = time.Unix(req.UntilTime, 0)
	}
	l, err := applog.Open(ctx, p, o)
	if err != nil {
		return grpcError(err)
	}
	// A line may come in several partial records; it is sent whole.
	partial := map[streamKey][]byte{}
	send := func(app string, content []byte) error {
		line := string(content)
		if l.Several {
			line = "[" + app + "] " + line
		}
		return stream.Send(&v1alpha.GetLogsResponse{Lines: []string{line}})
	}
	err = l.Read(ctx, func(app string, r podlog.Record) error {
		k := streamKey{app, r.Stream}
		if r.Partial {
			partial[k] = append(partial[k], r.Content...)
			return nil
		}
		content := r.Content
		if head, ok := partial[k]; ok {
			content = append(head, content...)
			delete(partial, k)
		}
		return send(app, content)
	}, func(err error) { s.cfg.Log.Debug("get logs: skip a record", "pod", p.UUID, "err", err) })
	if err != nil {
		if stream.Context().Err() != nil {
			return grpcError(stream.Context().Err())
		}
		return grpcError(err)
	}
	// What the pod wrote without a final newline.
	keys := slices.SortedFunc(maps.Keys(partial), func(a, b streamKey) int {
		return cmp.Or(cmp.Compare(a.app, b.app), cmp.Compare(a.stream, b.stream))
	})
	for _, k := range keys {
		if err := send(k.app, partial[k]); err != nil {
			return err
		}
	}
	return nil
}

// streamKey names one output stream of one app.
type streamKey struct{ app, stream string }
