package loadgen

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
)

// startShedding serves a wsgate echo that upgrades at most rate handshakes a second (0: no cap).
func startShedding(t *testing.T, rate int) string {
	t.Helper()
	srv, err := wsgate.NewServer(nil, &wsgate.Config{MaxHandshakeRate: rate, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return wsURL(hs)
}

// TestStormHonoursRetryAfter: a storm against a server that sheds gets every client in, by
// waiting the Retry-After it was told, over about clients/rate seconds.
func TestStormHonoursRetryAfter(t *testing.T) {
	const clients, rate = 60, 20
	res, err := Connect(context.Background(), Config{URL: startShedding(t, rate), Storm: true, Conns: clients,
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

// TestStormWithoutShedding: without a cap every client is in at the first attempt.
func TestStormWithoutShedding(t *testing.T) {
	res, err := Connect(context.Background(), Config{URL: startShedding(t, 0), Storm: true, Conns: 200, Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Storm; s.Accepted != 200 || s.Shed != 0 || s.Honoured != 0 || res.Errors != 0 {
		t.Fatalf("storm: %+v, %s", s, res.FirstError)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"3": 3 * time.Second, "0": 0,
		"Thu, 01 Jan 2026 12:00:07 GMT": 7 * time.Second, "Thu, 01 Jan 2026 11:00:00 GMT": 0} {
		if got, ok := RetryAfter(v, now); !ok || got != want {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "-1", "soon", "1.5"} {
		if _, ok := RetryAfter(v, now); ok {
			t.Errorf("RetryAfter(%q) accepted", v)
		}
	}
}
