package wsgate_test

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
)

// tryUpgrade makes one handshake on a new socket and closes it; it returns the status and the
// Retry-After the server answered.
func tryUpgrade(t *testing.T, ts *testServer, edit func(http.Header)) (int, string) {
	t.Helper()
	rc, resp := handshake(t, ts, upgradeRequest(http.MethodGet, ts.addr(), edit), nil)
	rc.nc.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// statusOf returns Metrics.Handshakes for status.
func statusOf(m wsgate.Metrics, status int) uint64 {
	return m.Handshakes[slices.Index(wsgate.MetricsHandshakeStatuses[:], status)]
}

// TestMaxHandshakeRateSheds: a burst above the rate is answered 503 with a Retry-After that
// counts the queue (later clients are told later seconds), the refusals are counted by status,
// and a client that waits as told gets in.
func TestMaxHandshakeRateSheds(t *testing.T) {
	const rate = 5
	ts := startServer(t, echoOrClose, &wsgate.Config{MaxHandshakeRate: rate})
	var ok, shed int
	var waits []int
	for range 4 * rate {
		status, ra := tryUpgrade(t, ts, nil)
		switch status {
		case http.StatusSwitchingProtocols:
			ok++
		case http.StatusServiceUnavailable:
			shed++
			secs, err := strconv.Atoi(ra)
			if err != nil || secs < 1 {
				t.Fatalf("503 with Retry-After %q, want whole seconds ≥ 1", ra)
			}
			waits = append(waits, secs)
		default:
			t.Fatalf("handshake answered %d, want 101 or 503", status)
		}
	}
	// The burst is the rate; the loop may last long enough on a loaded machine for a token more.
	if ok < rate || ok > rate+2 {
		t.Errorf("%d of %d handshakes upgraded at once, want the burst, %d", ok, 4*rate, rate)
	}
	if !slices.IsSorted(waits) || waits[len(waits)-1] < 2 {
		t.Errorf("Retry-After of the shed handshakes %v: want the queue counted, rising to 2 s or more", waits)
	}
	m := ts.Metrics()
	if got := statusOf(m, http.StatusServiceUnavailable); got != uint64(shed) {
		t.Errorf("Metrics.Handshakes[503] = %d, want %d", got, shed)
	}
	if m.HandshakesShed != uint64(shed) {
		t.Errorf("Metrics.HandshakesShed = %d, want %d", m.HandshakesShed, shed)
	}
	if got := statusOf(m, http.StatusSwitchingProtocols); got != uint64(ok) {
		t.Errorf("Metrics.Handshakes[101] = %d, want %d", got, ok)
	}
	time.Sleep(time.Duration(waits[0]) * time.Second)
	if status, _ := tryUpgrade(t, ts, nil); status != http.StatusSwitchingProtocols {
		t.Errorf("after waiting Retry-After (%d s) the handshake answered %d, want 101", waits[0], status)
	}
}

// TestMaxHandshakeRateOverTime: over a second and a half of handshakes one after another, the
// server upgrades the burst plus the rate times the time, and not more.
func TestMaxHandshakeRateOverTime(t *testing.T) {
	const rate = 20
	ts := startServer(t, echoOrClose, &wsgate.Config{MaxHandshakeRate: rate})
	start := time.Now()
	ok := 0
	for time.Since(start) < 1500*time.Millisecond {
		if status, _ := tryUpgrade(t, ts, nil); status == http.StatusSwitchingProtocols {
			ok++
		}
	}
	elapsed := time.Since(start).Seconds()
	most := rate + int(rate*elapsed) + 1
	if ok > most || ok < most*3/4 {
		t.Errorf("%d handshakes upgraded in %.2fs at %d/s with a burst of %d, want at most %d and near it", ok, elapsed, rate, rate, most)
	}
}

// TestMaxHandshakeRateZeroIsOff: without a rate, a burst is upgraded whole.
func TestMaxHandshakeRateZeroIsOff(t *testing.T) {
	ts := startServer(t, echoOrClose, nil)
	for i := range 50 {
		if status, _ := tryUpgrade(t, ts, nil); status != http.StatusSwitchingProtocols {
			t.Fatalf("handshake %d answered %d, want 101", i, status)
		}
	}
}

// TestShedProbe: while the server sheds, a browser client's probe (a plain GET or HEAD of the
// WebSocket path) is answered 503 with Retry-After, readable by a page of an allowed origin; when
// it does not shed, the probe is an ordinary bad handshake.
func TestShedProbe(t *testing.T) {
	ts := startServer(t, echoOrClose, &wsgate.Config{MaxHandshakeRate: 1, AllowedOrigins: []string{"app.example"}})
	probe := func(method, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+ts.addr()+"/ws", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := probe(http.MethodGet, ""); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("probe before any handshake answered %s, want 400 (not shedding)", resp.Status)
	}
	if status, _ := tryUpgrade(t, ts, nil); status != http.StatusSwitchingProtocols {
		t.Fatalf("first handshake answered %d, want 101", status)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp := probe(method, "https://app.example")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s probe while shedding answered %s Retry-After %q, want 503 with one", method, resp.Status, resp.Header.Get("Retry-After"))
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
			t.Errorf("%s probe: Access-Control-Allow-Origin %q, want the allowed origin", method, got)
		}
		if got := resp.Header.Get("Access-Control-Expose-Headers"); got != "Retry-After" {
			t.Errorf("%s probe: Access-Control-Expose-Headers %q, want Retry-After", method, got)
		}
	}
	resp := probe(http.MethodGet, "https://evil.example")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("probe from an origin not allowed answered %s with Access-Control-Allow-Origin %q, want 503 without",
			resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// TestHandshakeRateSpentOnlyByWhatPassed: handshakes refused for a bad origin never take a token,
// and those refused 429 by MaxConnectionsPerIP give theirs back, so another client still gets
// in within the same second.
func TestHandshakeRateSpentOnlyByWhatPassed(t *testing.T) {
	const rate = 3
	ts := startServer(t, echoOrClose, &wsgate.Config{MaxHandshakeRate: rate, MaxConnectionsPerIP: 1,
		TrustedProxies: []string{"127.0.0.1"}})
	from := func(addr string) func(http.Header) {
		return func(h http.Header) { h.Set("X-Forwarded-For", addr) }
	}
	held, resp := handshake(t, ts, upgradeRequest(http.MethodGet, ts.addr(), from("203.0.113.7")), nil)
	defer held.nc.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("first handshake answered %d, want 101", resp.StatusCode)
	}
	for range 3 * rate {
		if status, _ := tryUpgrade(t, ts, from("203.0.113.7")); status != http.StatusTooManyRequests {
			t.Fatalf("a second connection from a capped address answered %d, want 429", status)
		}
		if status, _ := tryUpgrade(t, ts, func(h http.Header) { h.Set("Origin", "https://evil.example") }); status != http.StatusForbidden {
			t.Fatalf("a foreign origin answered %d, want 403", status)
		}
	}
	if status, _ := tryUpgrade(t, ts, from("198.51.100.9")); status != http.StatusSwitchingProtocols {
		t.Errorf("another address after %d refusals answered %d, want 101: refused handshakes spent the node's rate", 6*rate, status)
	}
}
