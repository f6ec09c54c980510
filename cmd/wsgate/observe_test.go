package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wsgate/wsgate/internal/wstest"
)

// scrape GETs url (a /metrics) over real HTTP and parses Prometheus' text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := get(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return fams
}

// metricValue is the value of family name's series whose labels are all of kv (name, value pairs);
// -1 when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, kv ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
series:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(kv); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
					found = true
				}
			}
			if !found {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount())
		}
	}
	return -1
}

// listenerAddr waits for the log record msg and returns its addr.
func listenerAddr(t *testing.T, r *running, msg string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if rec := r.logs.find(msg, nil); rec != nil {
			if addr, _ := rec["addr"].(string); addr != "" {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q log:\n%s", msg, r.logs)
		}
	}
}

// TestMetricsCountRealTraffic: a gorilla client connects, sends, is closed with a code; a
// handshake is refused; the API answers; /metrics, scraped over HTTP, says so. pprof is not on
// the public listener.
func TestMetricsCountRealTraffic(t *testing.T) {
	keyFile := writeFile(t, "keys", "api-key-0123456789abcdef\n")
	r := startRun(t, "-api-path", "/api", "-api-key-file", keyFile, "-max-connections-per-ip", "1")
	base := "http://" + r.addr
	ws := dialWS(t, r.addr, "")
	echo(t, ws, websocket.TextMessage, "one")
	echo(t, ws, websocket.BinaryMessage, "two")
	echo(t, ws, websocket.TextMessage, "three")
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+r.addr+"/ws", nil); err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("a second connection from the address: %v, %v; want 429", resp, err)
	}
	if resp, _ := get(t, base+"/ws"); resp.StatusCode != 400 {
		t.Fatalf("GET /ws without upgrade: %d", resp.StatusCode)
	}
	if resp, body := post(t, base+"/api/info", `{}`, http.Header{"X-Api-Key": {"api-key-0123456789abcdef"}}); resp.StatusCode != 200 {
		t.Fatalf("API: %d %s", resp.StatusCode, body)
	}
	if resp, _ := post(t, base+"/api/info", `{}`, nil); resp.StatusCode != 401 {
		t.Fatalf("API without a key: %d", resp.StatusCode)
	}
	// A message counts as sent once the write returned, which may be just after the client read
	// it: scrape until every count is in, or the deadline.
	want := []struct {
		name string
		kv   []string
		want float64
	}{
		{"wsgate_connections", nil, 1},
		{"wsgate_connections_opened_total", nil, 1},
		{"wsgate_messages_received_total", []string{"type", "text"}, 2},
		{"wsgate_messages_received_total", []string{"type", "binary"}, 1},
		{"wsgate_messages_sent_total", []string{"type", "text"}, 2},
		{"wsgate_messages_sent_total", []string{"type", "binary"}, 1},
		// Bytes by frame type, headers included: the client's frames are masked (2+4 bytes of
		// header), the server's are not (2): "one", "three" in (9+11), "two" in (9); "one done",
		// "three done" out (10+12), "two done" out (10); no control frame yet.
		{"wsgate_bytes_received_total", []string{"type", "text"}, 20},
		{"wsgate_bytes_received_total", []string{"type", "binary"}, 9},
		{"wsgate_bytes_received_total", []string{"type", "control"}, 0},
		{"wsgate_bytes_sent_total", []string{"type", "text"}, 22},
		{"wsgate_bytes_sent_total", []string{"type", "binary"}, 10},
		{"wsgate_bytes_sent_total", []string{"type", "control"}, 0},
		{"wsgate_handshakes_total", []string{"status", "101"}, 1},
		{"wsgate_handshakes_total", []string{"status", "429"}, 1},
		{"wsgate_handshakes_total", []string{"status", "400"}, 1},
		{"wsgate_api_requests_total", []string{"endpoint", "info", "status", "200"}, 1},
		{"wsgate_api_requests_total", []string{"endpoint", "info", "status", "401"}, 1},
		{"wsgate_api_requests_total", []string{"endpoint", "publish", "status", "200"}, 0},
		{"wsgate_api_request_duration_seconds", []string{"endpoint", "info"}, 2}, // its summary's count: the 200 and the 401
		{"wsgate_api_request_duration_seconds", []string{"endpoint", "publish"}, 0},
		{"wsgate_connections_closed_total", []string{"code", "1000"}, 0},
	}
	var m map[string]*dto.MetricFamily
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m = scrape(t, base+"/metrics")
		var wrong []string
		for _, c := range want {
			if got := metricValue(m, c.name, c.kv...); got != c.want {
				wrong = append(wrong, fmt.Sprintf("%s%v = %v, want %v", c.name, c.kv, got, c.want))
			}
		}
		if len(wrong) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s:\n%s", strings.Join(wrong, "\n"))
		}
	}
	for _, std := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines", "go_memstats_heap_inuse_bytes"} {
		if m[std] == nil {
			t.Errorf("/metrics lacks %s", std)
		}
	}

	ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	for deadline := time.Now().Add(5 * time.Second); metricValue(scrape(t, base+"/metrics"), "wsgate_connections_closed_total", "code", "1000") != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the close with 1000 was not counted")
		}
	}
	if v := metricValue(scrape(t, base+"/metrics"), "wsgate_connections"); v != 0 {
		t.Errorf("wsgate_connections %v after the close, want 0", v)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		if resp, _ := get(t, base+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the public listener: %d, want 404", p, resp.StatusCode)
		}
	}
	if resp, body := get(t, base+"/readyz"); resp.StatusCode != 200 || body != "ready" {
		t.Errorf("/readyz: %d %q", resp.StatusCode, body)
	}
}

// TestMetricsOwnListener: with -metrics-listen, /metrics and pprof are there and not on -addr;
// with -metrics=false, nowhere.
func TestMetricsOwnListener(t *testing.T) {
	r := startRun(t, "-metrics-listen", "127.0.0.1:0")
	maddr := listenerAddr(t, r, "metrics listening")
	if m := scrape(t, "http://"+maddr+"/metrics"); m["wsgate_connections"] == nil {
		t.Fatal("no wsgate_connections on the metrics listener")
	}
	if resp, body := get(t, "http://"+maddr+"/debug/pprof/"); resp.StatusCode != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof on the metrics listener: %d", resp.StatusCode)
	}
	if resp, _ := get(t, "http://"+maddr+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("/readyz on the metrics listener: %d", resp.StatusCode)
	}
	for _, p := range []string{"/metrics", "/debug/pprof/"} {
		if resp, _ := get(t, "http://"+r.addr+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the public listener: %d, want 404", p, resp.StatusCode)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("shutdown with the metrics listener: %v", err)
	}

	off := startRun(t, "-metrics=false")
	if resp, _ := get(t, "http://"+off.addr+"/metrics"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("-metrics=false: /metrics answered %d", resp.StatusCode)
	}
}

// TestReadyzDuringShutdown: from the moment shutdown begins /readyz answers 503, while a client
// that does not answer the 1001 keeps the shutdown going.
func TestReadyzDuringShutdown(t *testing.T) {
	r := startRun(t, "-metrics-listen", "127.0.0.1:0", "-shutdown-timeout", "3s", "-close-timeout", "3s")
	maddr := listenerAddr(t, r, "metrics listening")
	ws := dialWS(t, r.addr, "") // never reads: its close handshake holds the shutdown
	_ = ws
	if resp, _ := get(t, "http://"+maddr+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("/readyz before shutdown: %d", resp.StatusCode)
	}
	r.cancel()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, body := get(t, "http://"+maddr+"/readyz")
		if resp.StatusCode == http.StatusServiceUnavailable && body == "shutting down" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during shutdown: %d %q, want 503", resp.StatusCode, body)
		}
	}
}

// TestReadyzFollowsNATS: a node on an external nats-server is ready while NATS is, 503 while the
// server is down, and ready again when it is back.
func TestReadyzFollowsNATS(t *testing.T) {
	_, port, _ := net.SplitHostPort(wstest.FreeAddrs(t, 1)[0])
	ns := startNATSServer(t, port, t.TempDir())
	r := startRun(t, "-nats", "nats://127.0.0.1:"+port, "-node", "ready1")
	ready := func() (int, string) {
		resp, body := get(t, "http://"+r.addr+"/readyz")
		return resp.StatusCode, body
	}
	await := func(status int, what string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			code, body := ready()
			if code == status {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz %d %q, want %d", what, code, body, status)
			}
		}
	}
	await(200, "NATS up")
	ns.kill()
	await(503, "NATS down")
	if code, body := ready(); !strings.Contains(body, "broker not ready") {
		t.Fatalf("/readyz with NATS down: %d %q", code, body)
	}
	ns.restart(t)
	await(200, "NATS back")
}

// countingHealth is a broker.Health that counts its calls and takes a while, like a JetStream
// STREAM.INFO round trip.
type countingHealth struct{ n atomic.Int64 }

func (h *countingHealth) Ready(ctx context.Context) error {
	h.n.Add(1)
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
	}
	return nil
}

// /readyz is public and unauthenticated: concurrent requests (and wsgate_ready's scrapes) must
// share one broker round trip (with NATS, a JetStream STREAM.INFO), not make one each.
func TestReadyzSharesBrokerCalls(t *testing.T) {
	h := &countingHealth{}
	g := &node{readyCache: newReadyCache(h)}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			w := httptest.NewRecorder()
			g.readyz(w, httptest.NewRequest("GET", "/readyz", nil))
			if w.Code != http.StatusOK {
				t.Errorf("/readyz: %d %s", w.Code, w.Body)
			}
		})
	}
	wg.Wait()
	if n := h.n.Load(); n > 1 {
		t.Fatalf("100 anonymous /readyz requests made %d broker readiness round trips, want them shared (cached or single-flight)", n)
	}
	if g.ready() != nil { // what wsgate_ready reads
		t.Fatal("wsgate_ready: not ready")
	}
	if n := h.n.Load(); n > 1 {
		t.Fatalf("wsgate_ready after /readyz made its own broker round trip (%d in all), want the cached answer", n)
	}
}

// wsgate_api_requests_total is the backend API's requests, served only when the API is on: with
// the admin page on and the API off it must not be served, nor count the admin page's polls.
func TestMetricsAPICountersNotServedWithAPIOff(t *testing.T) {
	r := startRun(t, "-admin-secret-file", writeFile(t, "admin", adminSecret))
	a := newAdminClient(t, "http://"+r.addr, nil)
	if resp, body := a.login(adminSecret); resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	if resp, body := a.do(http.MethodPost, "/admin/api/info", "{}", a.withCSRF()); resp.StatusCode != 200 {
		t.Fatalf("info: %d %s", resp.StatusCode, body)
	}
	if m := scrape(t, "http://"+r.addr+"/metrics"); m["wsgate_api_requests_total"] != nil {
		t.Fatalf("the API is off, yet /metrics serves wsgate_api_requests_total: %v", m["wsgate_api_requests_total"])
	}
}
