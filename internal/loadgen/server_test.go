package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testport"
)

// exposition is a /metrics page in the text format, as client_golang writes it.
const expoBefore = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 10
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.048576e+08
# TYPE go_goroutines gauge
go_goroutines 10
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 5.24288e+07
# TYPE wsgate_connections gauge
wsgate_connections 0
# TYPE wsgate_send_queue_dropped_total counter
wsgate_send_queue_dropped_total 5
# TYPE wsgate_slow_consumer_closes_total counter
wsgate_slow_consumer_closes_total{reason="bytes"} 1
wsgate_slow_consumer_closes_total{reason="count"} 0
# TYPE wsgate_connections_closed_total counter
wsgate_connections_closed_total{code="1000"} 7
`

// expoDuring is the load at its height: memory, goroutines and connections up.
const expoDuring = `# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 11
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 3.145728e+08
# TYPE go_goroutines gauge
go_goroutines 510
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 2.097152e+08
# TYPE wsgate_connections gauge
wsgate_connections 250
# TYPE wsgate_send_queue_dropped_total counter
wsgate_send_queue_dropped_total 6
# TYPE wsgate_slow_consumer_closes_total counter
wsgate_slow_consumer_closes_total{reason="bytes"} 1
wsgate_slow_consumer_closes_total{reason="count"} 1
`

// expoAfter: 2.5 CPU seconds, 4 drops and 2 slow-consumer closes more than before.
const expoAfter = `# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.572864e+08
# TYPE go_goroutines gauge
go_goroutines 12
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 6.291456e+07
# TYPE wsgate_connections gauge
wsgate_connections 0
# TYPE wsgate_send_queue_dropped_total counter
wsgate_send_queue_dropped_total 9
# TYPE wsgate_slow_consumer_closes_total counter
wsgate_slow_consumer_closes_total{reason="bytes"} 2
wsgate_slow_consumer_closes_total{reason="count"} 1
`

// scriptedMetrics serves expoBefore to the first scrape, expoDuring to the next ones, and
// expoAfter once ended is set; it counts the scrapes.
type scriptedMetrics struct {
	scrapes atomic.Int64
	ended   atomic.Bool
}

func (s *scriptedMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	n := s.scrapes.Add(1)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	switch {
	case s.ended.Load():
		_, _ = w.Write([]byte(expoAfter))
	case n == 1:
		_, _ = w.Write([]byte(expoBefore))
	default:
		_, _ = w.Write([]byte(expoDuring))
	}
}

func startScripted(t *testing.T) (*scriptedMetrics, string) {
	t.Helper()
	s := &scriptedMetrics{}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL + "/metrics"
}

// waitScrapes polls until s has answered n scrapes.
func waitScrapes(t *testing.T, s *scriptedMetrics, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.scrapes.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d scrapes within 5s, want %d", s.scrapes.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

// The watch reads before, samples during and reads after, over real HTTP: deltas of the counters
// (summed over their label sets), the gauges' before/peak/after, and CPU as a share of one core.
func TestServerWatchDeltasAndPeaks(t *testing.T) {
	s, url := startScripted(t)
	w := WatchServers(context.Background(), []MetricsTarget{{MetricsURL: url, Targets: []string{"ws://x/ws"}}}, 20*time.Millisecond, nil)
	waitScrapes(t, s, 3) // the first, and at least one sample during (the third may be cut short by Stop)
	s.ended.Store(true)
	rep := w.Stop(context.Background())
	if len(rep.Nodes) != 1 || rep.Sum != nil {
		t.Fatalf("report: %+v", rep)
	}
	n := rep.Nodes[0]
	if !n.Available || n.Reason != "" || n.Note != "" || n.Samples < 3 || n.Seconds <= 0 {
		t.Fatalf("node: %+v", n)
	}
	if n.CPUSeconds == nil || !near(*n.CPUSeconds, 2.5) || n.CPUPercent == nil || !near(*n.CPUPercent, 2.5/n.Seconds*100) {
		t.Errorf("cpu: %v s, %v %% over %.3fs", n.CPUSeconds, n.CPUPercent, n.Seconds)
	}
	if n.SendQueueDropped == nil || *n.SendQueueDropped != 4 || n.SlowConsumerCloses == nil || *n.SlowConsumerCloses != 2 {
		t.Errorf("drops %v, slow closes %v; want 4 and 2", n.SendQueueDropped, n.SlowConsumerCloses)
	}
	for name, tc := range map[string]struct {
		got  *Span
		want Span
	}{
		"rss":         {n.RSS, Span{100 << 20, 300 << 20, 150 << 20}},
		"heap":        {n.HeapInuse, Span{50 << 20, 200 << 20, 60 << 20}},
		"goroutines":  {n.Goroutines, Span{10, 510, 12}},
		"connections": {n.Connections, Span{0, 250, 0}},
	} {
		if tc.got == nil || *tc.got != tc.want {
			t.Errorf("%s: %+v, want %+v", name, tc.got, tc.want)
		}
	}

	// The summary and the JSON carry the same figures.
	var b bytes.Buffer
	rep.Print(&b)
	out := b.String()
	for _, want := range []string{"server ws://x/ws (" + url, "cpu 2.50s (", "% of one core)",
		"rss 150.0 MiB at end (before 100.0 MiB, peak 300.0 MiB)", "goroutines 10/510/12 before/peak/after",
		"connections 0/250/0", "send-queue drops 4, slow-consumer closes 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	var page bytes.Buffer
	if err := WriteHTML(&page, "t", "", []Named{{Name: "echo", Result: &Result{Mode: ModeEcho, Server: rep}}}); err != nil ||
		!strings.Contains(page.String(), "goroutines 10/510/12 before/peak/after") {
		t.Errorf("the HTML report lacks the server's side: %v", err)
	}
	js, err := json.Marshal(&Result{Server: rep})
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(js, &back); err != nil || back.Server == nil || len(back.Server.Nodes) != 1 {
		t.Fatalf("json: %v\n%s", err, js)
	}
	if g := back.Server.Nodes[0]; *g.CPUSeconds != 2.5 || *g.SendQueueDropped != 4 || g.RSS.Peak != 300<<20 || g.Goroutines.Peak != 510 {
		t.Errorf("json round trip: %s", js)
	}
}

// Without sampling in between (a run shorter than the interval), before and after are enough.
func TestServerWatchBeforeAndAfterOnly(t *testing.T) {
	s, url := startScripted(t)
	w := WatchServers(context.Background(), []MetricsTarget{{MetricsURL: url}}, time.Hour, nil)
	s.ended.Store(true)
	n := w.Stop(context.Background()).Nodes[0]
	if n.Samples != 2 || *n.CPUSeconds != 2.5 || n.Goroutines.Peak != 12 || n.RSS.Peak != 150<<20 {
		t.Fatalf("%+v", n)
	}
}

// A target without metrics is "not available", with the reason, whatever the cause; it is never
// scraped again after the first refusal.
func TestServerWatchUnavailable(t *testing.T) {
	var notFound atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/404", func(w http.ResponseWriter, r *http.Request) { notFound.Add(1); http.NotFound(w, r) })
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><html><body>hello</body></html>\n"))
	})
	mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("# TYPE http_requests_total counter\nhttp_requests_total 3\n"))
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://192.0.2.1/metrics", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		line := append(bytes.Repeat([]byte("# a comment line, repeated until the response is over the bound "), 1000), '\n')
		for range MaxMetricsBytes/len(line) + 2 {
			if _, err := w.Write(line); err != nil {
				return
			}
		}
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	refused := "http://" + testport.Addr(t) + "/metrics"

	cases := []struct{ url, reason string }{
		{hs.URL + "/404", "HTTP 404 Not Found"},
		{hs.URL + "/html", "not the Prometheus text format"},
		{hs.URL + "/other", "none of process_cpu_seconds_total"},
		{hs.URL + "/huge", "response larger than 8 MiB"},
		{hs.URL + "/moved", "HTTP 301 Moved Permanently"}, // not followed off the loopback address
		{refused, "connection refused"},
	}
	var targets []MetricsTarget
	for _, c := range cases {
		targets = append(targets, MetricsTarget{MetricsURL: c.url, Targets: []string{"ws://t/ws"}})
	}
	w := WatchServers(context.Background(), targets, 10*time.Millisecond, nil)
	time.Sleep(50 * time.Millisecond) // several intervals: none of these is sampled
	rep := w.Stop(context.Background())
	if rep.Sum != nil || len(rep.Nodes) != len(cases) {
		t.Fatalf("%+v", rep)
	}
	for i, c := range cases {
		if n := rep.Nodes[i]; n.Available || !strings.Contains(n.Reason, c.reason) || n.CPUSeconds != nil || n.Samples != 0 {
			t.Errorf("%s: %+v, want not available because %q", c.url, n, c.reason)
		}
	}
	if got := notFound.Load(); got != 1 {
		t.Errorf("/404 scraped %d times, want once", got)
	}
	var b bytes.Buffer
	rep.Print(&b)
	if !strings.Contains(b.String(), "server ws://t/ws: metrics not available ("+hs.URL+"/404: HTTP 404 Not Found)") {
		t.Errorf("summary:\n%s", b.String())
	}
}

// A server with the process and Go collectors but no wsgate_ metrics (Centrifugo, another Go
// server) gets its CPU and memory reported, and n/a for what it does not count.
func TestServerWatchForeignServer(t *testing.T) {
	var cpu atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := cpu.Add(1) // one CPU second per scrape
		_, _ = w.Write([]byte("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total " + strconv.FormatInt(c, 10) +
			"\n# TYPE go_goroutines gauge\ngo_goroutines 40\n# TYPE centrifugo_node_num_clients gauge\ncentrifugo_node_num_clients 3\n"))
	}))
	t.Cleanup(hs.Close)
	rep := WatchServers(context.Background(), []MetricsTarget{{MetricsURL: hs.URL, Targets: []string{"ws://c/ws"}}}, time.Hour, nil).Stop(context.Background())
	n := rep.Nodes[0]
	if !n.Available || *n.CPUSeconds != 1 || n.SendQueueDropped != nil || n.RSS != nil || n.Goroutines.After != 40 {
		t.Fatalf("%+v", n)
	}
	var b bytes.Buffer
	rep.Print(&b)
	if s := b.String(); !strings.Contains(s, "rss n/a") || !strings.Contains(s, "send-queue drops n/a") || !strings.Contains(s, "goroutines 40/40/40") {
		t.Errorf("summary:\n%s", s)
	}
	js, _ := json.Marshal(rep)
	if bytes.Contains(js, []byte("send_queue_dropped")) || !bytes.Contains(js, []byte(`"cpu_seconds":1`)) {
		t.Errorf("json: %s", js)
	}
}

// A counter that goes back (the server restarted) gives no increase, and a note; a final scrape
// that fails leaves the figures at the last sample, with a note.
func TestServerWatchResetAndLostFinal(t *testing.T) {
	var n atomic.Int64
	var down atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "gone", http.StatusServiceUnavailable)
			return
		}
		v := "100"
		if n.Add(1) > 1 {
			v = "2" // restarted
		}
		_, _ = w.Write([]byte("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total " + v + "\n"))
	}))
	t.Cleanup(hs.Close)
	w := WatchServers(context.Background(), []MetricsTarget{{MetricsURL: hs.URL}}, 10*time.Millisecond, nil)
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	down.Store(true)
	time.Sleep(30 * time.Millisecond)
	node := w.Stop(context.Background()).Nodes[0]
	if !node.Available || node.CPUSeconds != nil || node.CPUPercent != nil ||
		!strings.Contains(node.Note, "a counter went back") || !strings.Contains(node.Note, "the last scrape failed (HTTP 503") ||
		!strings.Contains(node.Note, "scrapes failed during the run") {
		t.Fatalf("%+v", node)
	}
}

// Several nodes: one scraper each, a sum over them; nodes that share a metrics URL are read once.
func TestServerWatchSumOverNodes(t *testing.T) {
	a, urlA := startScripted(t)
	b, urlB := startScripted(t)
	_, urlC := startScripted(t)
	targets, err := MetricsTargets([]string{"ws://a/ws", "ws://b/ws?node=1", "ws://b/ws?node=2", "ws://c/ws"},
		[]string{urlA, urlB, urlB, urlC + "x"}) // c: a 404
	if err != nil || len(targets) != 3 || len(targets[1].Targets) != 2 {
		t.Fatalf("%v %+v", err, targets)
	}
	w := WatchServers(context.Background(), targets, time.Hour, nil)
	a.ended.Store(true)
	b.ended.Store(true)
	rep := w.Stop(context.Background())
	if a.scrapes.Load() != 2 || b.scrapes.Load() != 2 {
		t.Errorf("scrapes %d and %d, want 2 each (before, after)", a.scrapes.Load(), b.scrapes.Load())
	}
	s := rep.Sum
	if s == nil || rep.Nodes[2].Available || *s.CPUSeconds != 5 || *s.SendQueueDropped != 8 || *s.SlowConsumerCloses != 4 ||
		*s.Goroutines != (Span{20, 24, 24}) || s.Samples != 4 {
		t.Fatalf("sum: %+v", s)
	}
	var buf bytes.Buffer
	rep.Print(&buf)
	if out := buf.String(); !strings.Contains(out, "server ws://b/ws?node=1, ws://b/ws?node=2 (") || !strings.Contains(out, "servers in sum") {
		t.Errorf("summary:\n%s", out)
	}
}

func TestMetricsURLs(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1:8080/ws":            "http://127.0.0.1:8080/metrics",
		"wss://localhost:8443/ws?x=1#f":     "https://localhost:8443/metrics",
		"ws://user:pw@[::1]:9/deep/path/ws": "http://[::1]:9/metrics",
	} {
		if got, err := MetricsURL(in); err != nil || got != want {
			t.Errorf("MetricsURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := MetricsURL("http://x/"); err == nil {
		t.Error("MetricsURL takes ws:// and wss:// only")
	}
	if _, err := MetricsTargets([]string{"ws://a/ws", "ws://b/ws"}, []string{"http://a/metrics"}); err == nil {
		t.Error("one metrics URL for two targets must be refused")
	}
	for u, ok := range map[string]bool{"http://127.0.0.1:1/metrics": true, "https://localhost/m": true,
		"http://192.0.2.1/metrics": false, "ftp://127.0.0.1/": false, "http:///x": false} {
		if err := CheckMetricsURL(u, false); (err == nil) != ok {
			t.Errorf("CheckMetricsURL(%q): %v", u, err)
		}
	}
	if err := CheckMetricsURL("http://192.0.2.1/metrics", true); err != nil {
		t.Error(err)
	}
}

// After the run the watch reads again while the server is still closing the run's connections
// (more than before), so that "after" is after them; within a bound, if they never go.
func TestServerWatchSettles(t *testing.T) {
	var open atomic.Int64 // connections the server counts; falls by one per scrape once ended
	var ended atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c := open.Load()
		if ended.Load() && c > 0 {
			open.Add(-1)
		}
		_, _ = w.Write([]byte("# TYPE wsgate_connections gauge\nwsgate_connections " + strconv.FormatInt(c, 10) + "\n"))
	}))
	t.Cleanup(hs.Close)
	w := WatchServers(context.Background(), []MetricsTarget{{MetricsURL: hs.URL}}, time.Hour, nil)
	open.Store(3)
	ended.Store(true)
	n := w.Stop(context.Background()).Nodes[0]
	if *n.Connections != (Span{0, 3, 0}) || n.Samples != 5 { // before, then 3, 2, 1, 0
		t.Fatalf("connections %+v in %d samples, want 0/3/0 in 5", *n.Connections, n.Samples)
	}

	open.Store(0)
	ended.Store(false)
	w = WatchServers(context.Background(), []MetricsTarget{{MetricsURL: hs.URL}}, time.Hour, nil)
	w.settleFor = 300 * time.Millisecond
	open.Store(7) // never closed
	start := time.Now()
	n = w.Stop(context.Background()).Nodes[0]
	if took := time.Since(start); took > 2*time.Second || n.Connections.After != 7 {
		t.Fatalf("stuck connections: Stop took %v, after %v", took, n.Connections.After)
	}
}
