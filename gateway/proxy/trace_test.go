package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/wsgate/wsgate/gateway/proxy"
)

// callTracer records the calls it traced and injects a traceparent naming each.
type callTracer struct {
	mu    sync.Mutex
	calls []string
}

func (c *callTracer) StartCall(_ context.Context, call string, h http.Header) func(error) {
	h.Set("Traceparent", "tp-"+call)
	return func(err error) {
		c.mu.Lock()
		c.calls = append(c.calls, fmt.Sprintf("%s failed=%v", call, err != nil))
		c.mu.Unlock()
	}
}

// TestCallsAreSpans: each call is one span (its retries inside), ended with its outcome, and
// the backend gets the span's trace context as a header of every attempt.
func TestCallsAreSpans(t *testing.T) {
	var mu sync.Mutex
	var got []string
	fails := 1
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("Traceparent"))
		fail := r.URL.Path == "/subscribe" && fails > 0
		fails--
		mu.Unlock()
		switch {
		case fail:
			w.WriteHeader(http.StatusServiceUnavailable) // retried
		case r.URL.Path == "/rpc":
			w.WriteHeader(http.StatusForbidden)
		default:
			_, _ = w.Write([]byte(`{"result":{}}`))
		}
	}))
	defer backend.Close()
	tr := &callTracer{}
	p, err := proxy.New(proxy.Config{
		Subscribe: proxy.Endpoint{URL: backend.URL + "/subscribe"},
		Publish:   proxy.Endpoint{URL: backend.URL + "/publish"},
		RPC:       proxy.Endpoint{URL: backend.URL + "/rpc", Retries: -1},
		Backoff:   1, Tracer: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	ctx := context.Background()
	cl := proxy.Client{Name: "1"}
	if err := p.Subscribe(ctx, proxy.SubscribeRequest{Client: cl, Channel: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(ctx, proxy.PublishRequest{Client: cl, Channel: "a", Data: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RPC(ctx, proxy.RPCRequest{Client: cl, Method: "m"}); err == nil {
		t.Fatal("rpc answered 403: want an error")
	}
	want := []string{"subscribe failed=false", "publish failed=false", "rpc failed=true"}
	if fmt.Sprint(tr.calls) != fmt.Sprint(want) {
		t.Errorf("spans %q, want %q", tr.calls, want)
	}
	wantHdr := []string{"/subscribe tp-subscribe", "/subscribe tp-subscribe", "/publish tp-publish", "/rpc tp-rpc"}
	if fmt.Sprint(got) != fmt.Sprint(wantHdr) {
		t.Errorf("backend saw %q, want %q", got, wantHdr)
	}
}
