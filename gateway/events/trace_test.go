package events

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// postTracer records the POSTs it traced, and the header each carried.
type postTracer struct {
	mu    sync.Mutex
	spans []bool // failed
}

func (p *postTracer) StartCall(_ context.Context, call string, h http.Header) func(error) {
	h.Set("Traceparent", "tp-"+call)
	return func(err error) {
		p.mu.Lock()
		p.spans = append(p.spans, err != nil)
		p.mu.Unlock()
	}
}

// TestEventPostsAreSpans: every attempt to POST an event is a span, a failed one too, and the
// backend gets its trace context.
func TestEventPostsAreSpans(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	be := &backend{}
	be.status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Traceparent"))
		mu.Unlock()
		be.ServeHTTP(w, r)
		be.status.Store(0) // the next attempt succeeds
	}))
	defer srv.Close()
	tr := &postTracer{}
	s := newSender(t, Options{URL: srv.URL, Tracer: tr})
	s.Connected(ConnectInfo{Client: "c0", User: "u"})
	eventually(t, 5*time.Second, "the event acknowledged, its span ended", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(be.got()) == 1 && len(tr.spans) >= 2
	})
	tr.mu.Lock()
	defer tr.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if len(tr.spans) != 2 || !tr.spans[0] || tr.spans[1] {
		t.Errorf("spans (failed?) %v, want [true false]", tr.spans)
	}
	if len(seen) != 2 || seen[0] != "tp-event" || seen[1] != "tp-event" {
		t.Errorf("backend saw traceparent %q", seen)
	}
}
