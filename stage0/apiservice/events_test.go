package apiservice

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
)

func TestDiff(t *testing.T) {
	const p = "pod-1"
	ran := func(context.Context, string) podEventFacts {
		return podEventFacts{apps: []string{"web"}, started: true, exitStatuses: map[string]int{"web": 3}}
	}
	neverRan := func(context.Context, string) podEventFacts {
		return podEventFacts{apps: []string{"web"}}
	}
	pods := func(stage int) map[string]podSeen { return map[string]podSeen{p: {stage: stage}} }
	tests := []struct {
		name       string
		prev, next *snapshot
		facts      func(context.Context, string) podEventFacts
		want       string
	}{
		{name: "nothing changed", prev: &snapshot{pods: pods(stageStarted)}, next: &snapshot{pods: pods(stageStarted)}, facts: ran, want: ""},
		{name: "created", prev: &snapshot{}, next: &snapshot{pods: pods(stageCreated)}, facts: ran, want: "POD_CREATED pod-1"},
		{
			name: "created and run between two looks", prev: &snapshot{}, next: &snapshot{pods: pods(stageStarted)}, facts: ran,
			want: "POD_CREATED pod-1,POD_PREPARED pod-1,POD_STARTED pod-1,APP_STARTED pod-1 web",
		},
		{name: "prepared", prev: &snapshot{pods: pods(stageCreated)}, next: &snapshot{pods: pods(stagePrepared)}, facts: ran, want: "POD_PREPARED pod-1"},
		{name: "aborted", prev: &snapshot{pods: pods(stageCreated)}, next: &snapshot{pods: pods(stageAborted)}, facts: ran, want: "POD_PREPARE_ABORTED pod-1"},
		{
			name: "exited", prev: &snapshot{pods: pods(stageStarted)}, next: &snapshot{pods: pods(stageExited)}, facts: ran,
			want: "APP_EXITED pod-1 web exit-code=3,POD_EXITED pod-1",
		},
		{
			name: "ran quickly", prev: &snapshot{pods: pods(stagePrepared)}, next: &snapshot{pods: pods(stageExited)}, facts: ran,
			want: "POD_STARTED pod-1,APP_STARTED pod-1 web,APP_EXITED pod-1 web exit-code=3,POD_EXITED pod-1",
		},
		{name: "prepared pod collected without running", prev: &snapshot{pods: pods(stagePrepared)}, next: &snapshot{pods: pods(stageExited)}, facts: neverRan, want: ""},
		{name: "removed", prev: &snapshot{pods: pods(stageExited)}, next: &snapshot{}, facts: ran, want: "POD_GARBAGE_COLLECTED pod-1"},
		{name: "exited and removed between two looks", prev: &snapshot{pods: pods(stageStarted)}, next: &snapshot{}, facts: ran, want: "POD_EXITED pod-1,POD_GARBAGE_COLLECTED pod-1"},
		{
			name: "images", prev: &snapshot{images: map[string]string{"sha512-1": "old"}}, next: &snapshot{images: map[string]string{"sha512-2": "new"}}, facts: ran,
			want: "IMAGE_IMPORTED sha512-2 new,IMAGE_REMOVED sha512-1 old",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range []*snapshot{tt.prev, tt.next} {
				if s.pods == nil {
					s.pods = map[string]podSeen{}
				}
			}
			now := time.Unix(1700000000, 0)
			var got []string
			for _, e := range diff(context.Background(), tt.prev, tt.next, now, tt.facts) {
				if e.Time != now.Unix() {
					t.Errorf("event time %d, want %d", e.Time, now.Unix())
				}
				s := strings.TrimPrefix(e.Type.String(), "EVENT_TYPE_") + " " + e.Id
				if e.From != "" {
					s += " " + e.From
				}
				for _, d := range e.Data {
					s += fmt.Sprintf(" %s=%s", d.Key, d.Value)
				}
				got = append(got, s)
			}
			if g := strings.Join(got, ","); g != tt.want {
				t.Errorf("diff =\n%s\nwant\n%s", g, tt.want)
			}
		})
	}
}

func TestSubscribeDropsSlowSubscriber(t *testing.T) {
	w := NewWatcher(t.TempDir(), nil, 0, nil)
	_, ch, cancel := w.Subscribe()
	defer cancel()
	batch := []*v1alpha.Event{{Type: v1alpha.EventType_EVENT_TYPE_POD_CREATED}}
	for range subscriberBuffer + 1 {
		w.publish(batch)
	}
	n := 0
	for range ch {
		n++
	}
	if n != subscriberBuffer {
		t.Fatalf("got %d batches before the channel closed, want %d", n, subscriberBuffer)
	}
	past, _, cancel2 := w.Subscribe()
	defer cancel2()
	if len(past) != subscriberBuffer+1 {
		t.Fatalf("history holds %d events, want %d", len(past), subscriberBuffer+1)
	}
}
