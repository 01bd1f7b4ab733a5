package apiservice

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/store"
)

// DefaultPollInterval is how often a Watcher looks at the data directory.
const DefaultPollInterval = time.Second

// historySize bounds the events a Watcher keeps for since_time replays.
const historySize = 4096

// subscriberBuffer is how many batches a slow stream may lag behind
// before it is dropped.
const subscriberBuffer = 256

// Watcher turns changes of the data directory into events by polling it
// (package doc). Run it once; Subscribe any number of times.
type Watcher struct {
	dataDir  string
	store    *store.Store
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	history []*v1alpha.Event
	subs    map[chan []*v1alpha.Event]struct{}
}

// NewWatcher returns a Watcher of the pods of dataDir and the images of
// s, looking every interval (DefaultPollInterval when 0), logging to
// log (nothing when nil).
func NewWatcher(dataDir string, s *store.Store, interval time.Duration, log *slog.Logger) *Watcher {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{dataDir: dataDir, store: s, interval: interval, log: log, subs: map[chan []*v1alpha.Event]struct{}{}}
}

// lifecycle stages of a pod, in the order a pod goes through them.
const (
	stageAborted = iota - 1
	stageCreated
	stagePrepared
	stageStarted
	stageExited
)

func stageOf(s pod.State) int {
	switch s {
	case pod.AbortedPrepare:
		return stageAborted
	case pod.Prepared:
		return stagePrepared
	case pod.Running:
		return stageStarted
	case pod.Exited, pod.ExitedGarbage, pod.Garbage, pod.Deleting:
		return stageExited
	}
	return stageCreated
}

// podSeen is what a look keeps of a pod.
type podSeen struct {
	stage int
	apps  []string // known once it started
}

// snapshot is one look at the data directory.
type snapshot struct {
	pods   map[string]podSeen
	images map[string]string // ID → name
	// index identifies the version of the store index the images were
	// read from: its size, modification time and inode.
	index indexStamp
}

type indexStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// Run looks at the data directory every interval until ctx is done,
// publishing the differences. The first look publishes nothing.
func (w *Watcher) Run(ctx context.Context) {
	prev := w.look(ctx, nil)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			w.closeAll()
			return
		case now := <-t.C:
			next := w.look(ctx, prev)
			events := diff(ctx, prev, next, now, w.podFacts)
			prev = next
			if len(events) > 0 {
				w.publish(events)
			}
		}
	}
}

// look reads the pods and, when the index changed since prev, the images.
// A failed read keeps what prev saw, so that a transient error does not
// look like everything was removed.
func (w *Watcher) look(ctx context.Context, prev *snapshot) *snapshot {
	s := &snapshot{pods: map[string]podSeen{}, images: map[string]string{}}
	pods, err := pod.List(ctx, w.dataDir)
	if err != nil {
		w.log.Warn("watch pods", "err", err)
		if prev != nil {
			s.pods = prev.pods
		}
	}
	for _, p := range pods {
		seen := podSeen{stage: stageOf(p.State)}
		if prev != nil {
			if old, ok := prev.pods[p.UUID]; ok {
				seen.apps = old.apps
			}
		}
		s.pods[p.UUID] = seen
	}
	s.index = w.indexStamp()
	if prev != nil && s.index == prev.index {
		s.images = prev.images
		return s
	}
	images, err := w.store.Images(ctx)
	if err != nil {
		w.log.Warn("watch images", "err", err)
		if prev != nil {
			s.images, s.index = prev.images, prev.index
		}
		return s
	}
	for _, im := range images {
		s.images[im.ID] = im.Name
	}
	return s
}

func (w *Watcher) indexStamp() indexStamp {
	fi, err := os.Stat(w.store.Index.Path)
	if err != nil {
		return indexStamp{} // missing: no images yet
	}
	return stampOf(fi)
}

// podFacts reads what the events of a pod that started or exited carry:
// its apps, whether it started, and the apps' exit statuses.
func (w *Watcher) podFacts(ctx context.Context, uuid string) (facts podEventFacts) {
	p, err := pod.Get(ctx, w.dataDir, uuid)
	if err != nil {
		return facts
	}
	if pm, err := p.Manifest(ctx); err == nil {
		for _, a := range pm.Apps {
			facts.apps = append(facts.apps, a.Name.String())
		}
	}
	if _, err := p.Started(ctx); err == nil {
		facts.started = true
	}
	if st, err := p.AppExitStatuses(ctx); err == nil {
		facts.exitStatuses = st
	}
	return facts
}

// podEventFacts are what podFacts reads.
type podEventFacts struct {
	apps         []string
	started      bool
	exitStatuses map[string]int
}

// diff returns the events that lead from prev to next, pod by pod in
// lifecycle order. A pod that went through several stages between two
// looks gets the events of each; facts reads what they carry.
func diff(ctx context.Context, prev, next *snapshot, now time.Time, facts func(context.Context, string) podEventFacts) []*v1alpha.Event {
	var out []*v1alpha.Event
	at := now.Unix()
	ev := func(t v1alpha.EventType, id, from string, data ...*v1alpha.KeyValue) {
		out = append(out, &v1alpha.Event{Type: t, Id: id, From: from, Time: at, Data: data})
	}
	for _, id := range sortedKeys(next.pods) {
		seen := next.pods[id]
		old, known := prev.pods[id]
		from := old.stage
		if !known {
			ev(v1alpha.EventType_EVENT_TYPE_POD_CREATED, id, "")
			from = stageCreated
		}
		if seen.stage == from {
			continue
		}
		if seen.stage == stageAborted {
			ev(v1alpha.EventType_EVENT_TYPE_POD_PREPARE_ABORTED, id, "")
			continue
		}
		var f *podEventFacts
		get := func() *podEventFacts {
			if f == nil {
				v := facts(ctx, id)
				f = &v
				seen.apps = v.apps
				next.pods[id] = seen
			}
			return f
		}
		for st := max(from, stageCreated) + 1; st <= seen.stage; st++ {
			switch st {
			case stagePrepared:
				ev(v1alpha.EventType_EVENT_TYPE_POD_PREPARED, id, "")
			case stageStarted:
				if seen.stage > stageStarted && !get().started {
					continue // gc'd without running
				}
				ev(v1alpha.EventType_EVENT_TYPE_POD_STARTED, id, "")
				for _, a := range get().apps {
					ev(v1alpha.EventType_EVENT_TYPE_APP_STARTED, id, a)
				}
			case stageExited:
				if from < stageStarted && !get().started {
					continue
				}
				fs := get()
				for _, a := range fs.apps {
					if code, ok := fs.exitStatuses[a]; ok {
						ev(v1alpha.EventType_EVENT_TYPE_APP_EXITED, id, a, &v1alpha.KeyValue{Key: "exit-code", Value: strconv.Itoa(code)})
					}
				}
				ev(v1alpha.EventType_EVENT_TYPE_POD_EXITED, id, "")
			}
		}
	}
	for _, id := range sortedKeys(prev.pods) {
		if _, ok := next.pods[id]; !ok {
			// Gone: removed by gc or rm. One that still ran at the last
			// look exited since (its apps' statuses went with it).
			if prev.pods[id].stage == stageStarted {
				ev(v1alpha.EventType_EVENT_TYPE_POD_EXITED, id, "")
			}
			ev(v1alpha.EventType_EVENT_TYPE_POD_GARBAGE_COLLECTED, id, "")
		}
	}
	for _, id := range sortedKeys(next.images) {
		if _, ok := prev.images[id]; !ok {
			ev(v1alpha.EventType_EVENT_TYPE_IMAGE_IMPORTED, id, next.images[id])
		}
	}
	for _, id := range sortedKeys(prev.images) {
		if _, ok := next.images[id]; !ok {
			ev(v1alpha.EventType_EVENT_TYPE_IMAGE_REMOVED, id, prev.images[id])
		}
	}
	return out
}

func (w *Watcher) publish(events []*v1alpha.Event) {
	for _, e := range events {
		w.log.Debug("event", "type", e.Type.String(), "id", e.Id, "from", e.From)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.history = append(w.history, events...)
	if over := len(w.history) - historySize; over > 0 {
		w.history = append([]*v1alpha.Event(nil), w.history[over:]...)
	}
	for ch := range w.subs {
		select {
		case ch <- events:
		default:
			// Too slow: drop it rather than stall every stream.
			delete(w.subs, ch)
			close(ch)
		}
	}
}

func (w *Watcher) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		delete(w.subs, ch)
		close(ch)
	}
}

// Subscribe returns the events seen so far (the last historySize) and a
// channel of the batches seen from now on, closed when the Watcher stops
// or the subscriber fell too far behind; cancel ends the subscription.
func (w *Watcher) Subscribe() (past []*v1alpha.Event, batches <-chan []*v1alpha.Event, cancel func()) {
	ch := make(chan []*v1alpha.Event, subscriberBuffer)
	w.mu.Lock()
	defer w.mu.Unlock()
	past = append([]*v1alpha.Event(nil), w.history...)
	w.subs[ch] = struct{}{}
	return past, ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, ok := w.subs[ch]; ok {
			delete(w.subs, ch)
			close(ch)
		}
	}
}
