package loadgen

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
)

// startShedding serves a wsgate echo that upgrades at most rate handshakes a second (0: no cap),
// and returns the client addresses of its upgrades so far.
func startShedding(t *testing.T, rate int) (string, func() map[string]int) {
	t.Helper()
	var mu sync.Mutex
	hosts := map[string]int{}
	srv, err := wsgate.NewServer(nil, &wsgate.Config{MaxHandshakeRate: rate, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			mu.Lock()
			hosts[host]++
			mu.Unlock()
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return wsURL(hs), func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(hosts)
	}
}

// TestStormHonoursRetryAfter: a storm against a server that sheds gets every client in, by
// waiting the Retry-After it was told, over about clients/rate seconds.
func TestStormHonoursRetryAfter(t *testing.T) {
	const clients, rate = 60, 20
	url, _ := startShedding(t, rate)
	res, err := Connect(context.Background(), Config{URL: url, Storm: true, Conns: clients,
		Duration: 50 * time.Millisecond, RampTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Storm
	if s == nil || s.Accepted != clients || res.Errors != 0 {
		t.Fatalf("storm: %+v, errors %d (%s); want all %d in", s, res.Errors, res.FirstError, clients)
	}
	if s.Shed == 0 || s.Honoured == 0 || s.Failed != 0 {
		t.Errorf("storm: %d 503s, %d retries honoured, %d failed otherwise; want some 503s, all honoured", s.Shed, s.Honoured, s.Failed)
	}
	if s.Seconds < float64(clients-rate)/rate-0.5 {
		t.Errorf("the last client was in %.2fs after the firing; at %d/s with a burst of %d it cannot be before %.1fs", s.Seconds, rate, rate, float64(clients-rate)/rate)
	}
	if s.Handshake.Count != clients || s.Accept.P99 < s.Handshake.P99 {
		t.Errorf("histograms: %d handshakes (want %d), time to get in p99 %.0fµs below the handshake's %.0fµs", s.Handshake.Count, clients, s.Accept.P99, s.Handshake.P99)
	}
	merged, err := MergeStorms([]*StormResult{s, s})
	if err != nil || merged.Accepted != 2*clients || merged.Handshake.Count != 2*clients {
		t.Errorf("MergeStorms of the storm with itself: %+v, %v", merged, err)
	}
}

// TestStormWithoutShedding: without a cap every client is in at the first attempt, and the
// clients come from the source addresses asked for, 127.0.0.1 to 127.0.0.3, in equal shares.
func TestStormWithoutShedding(t *testing.T) {
	url, hosts := startShedding(t, 0)
	res, err := Connect(context.Background(), Config{URL: url, Storm: true, Conns: 150, SourceIPs: 3, Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Storm; s.Accepted != 150 || s.Shed != 0 || s.Honoured != 0 || res.Errors != 0 {
		t.Fatalf("storm: %+v, %s", s, res.FirstError)
	}
	if got, want := hosts(), map[string]int{"127.0.0.1": 50, "127.0.0.2": 50, "127.0.0.3": 50}; !maps.Equal(got, want) {
		t.Errorf("upgrades by client address %v, want %v", got, want)
	}
}

// TestStormReportsADrop: a connection the server ends after it was in counts as an error, and
// the report says which client and how.
func TestStormReportsADrop(t *testing.T) {
	var opened atomic.Int32
	srv, err := wsgate.NewServer(dropEveryOther{&opened}, &wsgate.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { _ = srv.Close(); hs.Close() })
	res, err := Connect(context.Background(), Config{URL: wsURL(hs), Storm: true, Conns: 4,
		Duration: 300 * time.Millisecond, RampTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Storm.Accepted != 4 || res.Dropped != 2 || res.Errors != 2 ||
		!strings.Contains(res.FirstError, "after it was in") || !strings.Contains(res.FirstError, "1013") {
		t.Fatalf("accepted %d, dropped %d, errors %d, first %q; want 4 in, 2 dropped with the reason",
			res.Storm.Accepted, res.Dropped, res.Errors, res.FirstError)
	}
}

// dropEveryOther closes every second connection it opens, 1013, once the storm is over.
type dropEveryOther struct{ n *atomic.Int32 }

func (d dropEveryOther) OnOpen(c *wsgate.Conn) {
	if d.n.Add(1)%2 == 0 {
		time.AfterFunc(100*time.Millisecond, func() { _ = c.Close(wsgate.CloseTryAgainLater, "dropped by the test") })
	}
}
func (dropEveryOther) OnMessage(*wsgate.Conn, wsgate.Message) {}
func (dropEveryOther) OnClose(*wsgate.Conn, error)            {}
