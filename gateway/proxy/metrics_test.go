package proxy_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/wsgate/wsgate/gateway/proxy"
)

// TestMetricsCountCalls: each call counts once, retries included, as answered, refused or
// failed; a call not configured is not counted.
func TestMetricsCountCalls(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/subscribe":
			if n%2 == 0 {
				_, _ = io.WriteString(w, `{"error":{"code":103,"message":"no"}}`)
				return
			}
			_, _ = io.WriteString(w, `{"result":{}}`)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	cfg := all(b.URL)
	cfg.Connect = proxy.Endpoint{URL: b.URL + "/connect", Retries: 1}
	cfg.RPC = proxy.Endpoint{}
	p := newProxy(t, cfg)
	ctx := context.Background()
	for range 2 { // answered, then refused
		_ = p.Subscribe(ctx, proxy.SubscribeRequest{Client: client("alice"), Channel: "c"})
	}
	if _, err := p.Connect(ctx, proxy.ConnectRequest{Client: client("")}); err == nil {
		t.Fatal("a 503 connect succeeded")
	}
	_, _ = p.RPC(ctx, proxy.RPCRequest{Client: client("alice"), Method: "m"})
	m := p.Metrics()
	idx := func(name string) int {
		for i, h := range proxy.Hooks {
			if h == name {
				return i
			}
		}
		t.Fatalf("no hook %s", name)
		return -1
	}
	sub, conn, rpc := m[idx("subscribe")], m[idx("connect")], m[idx("rpc")]
	if sub.Calls != 2 || sub.Refusals != 1 || sub.Failures != 0 || sub.Seconds <= 0 {
		t.Errorf("subscribe: %+v, want 2 calls, 1 refusal", sub)
	}
	if conn.Calls != 1 || conn.Failures != 1 || conn.Refusals != 0 {
		t.Errorf("connect: %+v, want 1 call (2 attempts), 1 failure", conn)
	}
	if got := len(b.calls()); got != 4 {
		t.Errorf("the backend got %d requests, want 4 (the connect retried once)", got)
	}
	if rpc.Calls != 0 {
		t.Errorf("rpc without a URL counted: %+v", rpc)
	}
}
