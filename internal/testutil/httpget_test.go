package testutil

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTPGetWaitsForOK(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("up\n"))
	}))
	defer srv.Close()
	if got := HTTPGet(t, srv.URL, 5*time.Second); got != "up\n" {
		t.Fatalf("body %q", got)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestHTTPGetGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "never", http.StatusNotFound)
	}))
	defer srv.Close()
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		HTTPGet(ft, srv.URL, 300*time.Millisecond)
	}()
	<-done
	if !ft.failed {
		t.Fatal("HTTPGet did not fail on a server that never answers 200")
	}
}

// fatalRecorder records Fatalf and ends the goroutine as t.Fatalf would.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit()
}
