package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// runBenchT runs "wsgate bench args..." and returns its stdout and error.
func runBenchT(t *testing.T, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	err := runBench(context.Background(), args, stdin, &stdout, &stderr)
	return stdout.String(), err
}

func TestBenchHelpDocumentsEveryModeAndFlag(t *testing.T) {
	out, err := runBenchT(t, nil, "--help")
	if err != nil {
		t.Fatal(err)
	}
	o := defaultBenchOptions(loadgen.ModeEcho)
	newBenchFlagSet(&o, loadgen.ModeEcho).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out, "\n  -"+f.Name+" ") && !strings.Contains(out, "\n  -"+f.Name+"\n") {
			t.Errorf("bench --help lacks flag -%s", f.Name)
		}
	})
	for _, m := range loadgen.Modes {
		if !strings.Contains(out, "\n  "+string(m)+" ") {
			t.Errorf("bench --help lacks mode %s", m)
		}
		mode, err := runBenchT(t, nil, string(m), "-h")
		if err != nil || !strings.Contains(mode, "Usage: wsgate bench "+string(m)) || !strings.Contains(mode, "-duration") {
			t.Errorf("bench %s -h: %v\n%s", m, err, mode)
		}
	}
	// Each mode's help lists its own flags and not the others'.
	idle, _ := runBenchT(t, nil, "idle", "-h")
	if !strings.Contains(idle, "-pid") || strings.Contains(idle, "-window") {
		t.Errorf("bench idle -h:\n%s", idle)
	}
}

func TestBenchBadFlagsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing mode"},
		{[]string{"flood"}, `unknown mode "flood"`},
		{[]string{"echo", "-c", "0"}, "-c must be within 1..50000"},
		{[]string{"echo", "-c", "many"}, `invalid value "many" for flag -c`},
		{[]string{"echo", "-duration", "11m"}, "-duration must be within"},
		{[]string{"echo", "-window", "0"}, "-window must be within"},
		{[]string{"echo", "-url", "ws://192.0.2.1/ws"}, "not a loopback address; pass -allow-remote"},
		{[]string{"echo", "-url", "http://127.0.0.1/ws"}, "ws:// or wss://"},
		{[]string{"idle", "-window", "4"}, "flag -window does not apply to this mode"},
		{[]string{"connect", "-subscribers", "4"}, "flag -subscribers does not apply"},
		{[]string{"fanout", "-protocol", "mqtt"}, "want wsgate or centrifugo"},
		{[]string{"fanout", "-rate", "0"}, "-rate must be within"},
		{[]string{"echo", "extra"}, `unexpected argument "extra"`},
		{[]string{"echo", "-url", "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws"}, "several URLs (the nodes of a cluster) in fanout only"},
		{[]string{"fanout", "-url", "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws", "-publish-node", "3"}, "-publish-node must be within 1..2"},
		{[]string{"fanout", "-url", "ws://127.0.0.1:1/ws,ws://192.0.2.1/ws"}, "not a loopback address"},
		{[]string{"fanout", "-publish-node", "2"}, "there is one node"},
		{[]string{"echo", "-publish-node", "1"}, "flag -publish-node does not apply"},
	} {
		_, err := runBenchT(t, nil, tc.args...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bench %q: got %v (exit %d), want a usage error containing %q", tc.args, err, exitCode(err), tc.want)
		}
	}
}

// A few seconds of each mode against an in-process "wsgate serve": the tool runs end to end.
func TestBenchSmokeEveryMode(t *testing.T) {
	r := startRun(t)
	url := r.wsURL()
	dir := t.TempDir()

	out, err := runBenchT(t, nil, "echo", "-url", url, "-c", "5", "-duration", "300ms", "-suffix", " done",
		"-html", filepath.Join(dir, "echo.html"))
	if err != nil || !strings.Contains(out, "msgs/s") || !strings.Contains(out, "errors 0") {
		t.Fatalf("echo: %v\n%s", err, out)
	}
	html, err := os.ReadFile(filepath.Join(dir, "echo.html"))
	if err != nil || !bytes.Contains(html, []byte("<svg")) {
		t.Fatalf("echo -html: %v", err)
	}

	out, err = runBenchT(t, nil, "echo", "-url", url, "-c", "5", "-window", "4", "-duration", "300ms", "-suffix", " done", "-json")
	var res loadgen.Result
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Messages == 0 || res.Jain < 0.5 {
		t.Fatalf("echo -json: %v\n%s", err, out)
	}

	// Without -suffix every echo of "wsgate serve" mismatches: exit status 3, and a hint.
	out, err = runBenchT(t, nil, "echo", "-url", url, "-c", "2", "-duration", "200ms")
	if exitCode(err) != exitBenchErrors || !strings.Contains(err.Error(), "-suffix") {
		t.Fatalf("echo without -suffix: %v (exit %d)\n%s", err, exitCode(err), out)
	}

	out, err = runBenchT(t, nil, "connect", "-url", url, "-c", "2", "-duration", "300ms")
	if err != nil || !strings.Contains(out, "handshakes/s") {
		t.Fatalf("connect: %v\n%s", err, out)
	}

	out, err = runBenchT(t, nil, "idle", "-url", url, "-c", "20", "-duration", "300ms", "-pid", strconv.Itoa(os.Getpid()), "-reset")
	if err != nil || !strings.Contains(out, "20 of 20 open") || !strings.Contains(out, "B per connection") || !strings.Contains(out, "pings answered") {
		t.Fatalf("idle: %v\n%s", err, out)
	}

	out, err = runBenchT(t, nil, "fanout", "-url", url, "-subscribers", "10", "-rate", "40", "-duration", "500ms", "-json")
	res = loadgen.Result{}
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Published != 20 || res.Messages != 200 || res.Lost != 0 {
		t.Fatalf("fanout: %v\n%s", err, out)
	}
}

// fanout against "nodes": three URLs of one server (the query tells them apart), the publisher
// on the second; the subscribers are dealt over the first and the third, and the figures of each
// node add up to the run's.
func TestBenchFanoutNodes(t *testing.T) {
	r := startRun(t)
	nodes := []string{r.wsURL() + "?node=1", r.wsURL() + "?node=2", r.wsURL() + "?node=3"}
	out, err := runBenchT(t, nil, "fanout", "-url", strings.Join(nodes, ", "), "-publish-node", "2",
		"-subscribers", "5", "-rate", "40", "-duration", "500ms", "-json")
	var res loadgen.Result
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Published != 20 || res.Messages != 100 || res.Lost != 0 {
		t.Fatalf("fanout: %v\n%s", err, out)
	}
	if res.URL != nodes[1] || len(res.Nodes) != 3 || !res.Nodes[0].Publisher || res.Nodes[0].Subscribers != 0 {
		t.Fatalf("nodes: %+v", res.Nodes)
	}
	for i, want := range []struct {
		url  string
		subs int
	}{{nodes[0], 3}, {nodes[2], 2}} {
		if n := res.Nodes[i+1]; n.URL != want.url || n.Subscribers != want.subs || n.Deliveries != 20*uint64(want.subs) {
			t.Errorf("node %d: %+v, want %d subscribers on %s", i+1, n, want.subs, want.url)
		}
	}
	out, err = runBenchT(t, nil, "fanout", "-url", strings.Join(nodes[:2], ","), "-subscribers", "2", "-rate", "40", "-duration", "200ms")
	if err != nil || !strings.Contains(out, "2 nodes (the publisher's first)") || !strings.Contains(out, "the publisher, no subscribers") {
		t.Fatalf("fanout summary: %v\n%s", err, out)
	}
}

// -hold-stdin: "open N" once the connections are up, and the hold ends when stdin closes.
func TestBenchIdleHoldStdin(t *testing.T) {
	r := startRun(t)
	pr, pw := io.Pipe()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() { // owner: the test; ends when stdin closes
		done <- runBench(context.Background(), []string{"idle", "-url", r.wsURL(), "-c", "10", "-duration", "1m", "-hold-stdin"}, pr, &out, io.Discard)
	}()
	out.waitFor(t, "open 10\n")
	start := time.Now()
	pw.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idle did not end when stdin closed")
	}
	if time.Since(start) > 5*time.Second || !strings.Contains(out.String(), "10 of 10 open") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestBenchProgressLine(t *testing.T) {
	var b bytes.Buffer
	p := &progressLine{w: &b}
	p.show(loadgen.Snapshot{Mode: loadgen.ModeEcho, Phase: "running", Elapsed: 2 * time.Second, Conns: 3, Target: 3,
		Count: 10, Rate: 5, Unit: "msgs", P50: 800, P99: 2500})
	p.clear()
	s := b.String()
	if !strings.HasPrefix(s, "\r") || !strings.Contains(s, "conns 3/3") || !strings.Contains(s, "p99 2.50ms") || strings.Contains(s, "\n") {
		t.Fatalf("%q", s)
	}
	if isTerminalWriter(&b) {
		t.Fatal("a buffer is not a terminal")
	}
}

// The server's side: "wsgate serve -metrics=false" (no /metrics) is reported as not available,
// and the run stands; -metrics-url reads another address (here a stand-in that serves the text
// format), and the summary and the JSON carry its figures; -metrics-url off reads nothing.
func TestBenchServerMetrics(t *testing.T) {
	r := startRun(t, "-metrics=false")
	url := r.wsURL()
	var scrapes atomic.Int64
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := scrapes.Add(1) // one CPU second and one drop per scrape; goroutines up while sampled
		fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %d\n", n)
		fmt.Fprintf(w, "# TYPE go_goroutines gauge\ngo_goroutines %d\n", 10*n)
		fmt.Fprintf(w, "# TYPE wsgate_send_queue_dropped_total counter\nwsgate_send_queue_dropped_total %d\n", n)
	}))
	t.Cleanup(metrics.Close)

	out, err := runBenchT(t, nil, "echo", "-url", url, "-c", "2", "-duration", "300ms", "-suffix", " done")
	if err != nil || !strings.Contains(out, "server "+url+": metrics not available ("+strings.Replace(strings.TrimSuffix(url, "/ws"), "ws:", "http:", 1)+"/metrics: HTTP 404") {
		t.Fatalf("without /metrics: %v\n%s", err, out)
	}

	out, err = runBenchT(t, nil, "echo", "-url", url, "-c", "2", "-duration", "1500ms", "-suffix", " done", "-metrics-url", metrics.URL+"/metrics", "-json")
	var res loadgen.Result
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Server == nil || len(res.Server.Nodes) != 1 {
		t.Fatalf("-metrics-url: %v\n%s", err, out)
	}
	n := res.Server.Nodes[0]
	k := float64(n.Samples - 1) // scrapes between the first and the last one kept
	if !n.Available || n.Samples < 3 || int64(n.Samples) > scrapes.Load() || *n.CPUSeconds < k || *n.SendQueueDropped < k ||
		n.Goroutines.Peak != n.Goroutines.After || n.Goroutines.After <= n.Goroutines.Before || n.RSS != nil {
		t.Fatalf("server: %+v (scrapes %d)", n, scrapes.Load())
	}

	out, err = runBenchT(t, nil, "connect", "-url", url, "-c", "1", "-duration", "200ms", "-metrics-url", metrics.URL+"/metrics")
	if err != nil || !strings.Contains(out, "server "+url+" ("+metrics.URL+"/metrics, 2 samples") || !strings.Contains(out, "rss n/a") {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	before := scrapes.Load()
	out, err = runBenchT(t, nil, "connect", "-url", url, "-c", "1", "-duration", "200ms", "-metrics-url", "off", "-json")
	res = loadgen.Result{}
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Server != nil || scrapes.Load() != before {
		t.Fatalf("-metrics-url off: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"echo", "-metrics-url", "http://192.0.2.1/metrics"}, "not a loopback address"},
		{[]string{"echo", "-metrics-url", "ws://127.0.0.1/metrics"}, "http:// or https://"},
		{[]string{"fanout", "-url", url + "?1," + url + "?2", "-metrics-url", metrics.URL}, "lists 1 URLs for 2 targets"},
	} {
		_, err := runBenchT(t, nil, tc.args...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bench %q: got %v (exit %d), want a usage error containing %q", tc.args, err, exitCode(err), tc.want)
		}
	}
}

// End to end against "wsgate serve" and its /metrics: the run's connections show in the server's
// figures. The server runs in the test's process, so its CPU and goroutines include the load's.
func TestBenchServerMetricsEndToEnd(t *testing.T) {
	r := startRun(t)
	url := r.wsURL()
	// 1.5s: the watch samples once a second, so at least one sample falls while the 8 are open.
	out, err := runBenchT(t, nil, "echo", "-url", url, "-c", "8", "-duration", "1500ms", "-suffix", " done", "-json")
	var res loadgen.Result
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Server == nil || len(res.Server.Nodes) != 1 {
		t.Fatalf("echo: %v\n%s", err, out)
	}
	n := res.Server.Nodes[0]
	if !n.Available || n.Note != "" || n.Samples < 3 || n.MetricsURL != "http://"+r.addr+"/metrics" {
		t.Fatalf("server: %+v", n)
	}
	if n.CPUSeconds == nil || *n.CPUSeconds <= 0 || *n.CPUPercent <= 0 || n.RSS == nil || n.RSS.Peak < n.RSS.Before ||
		n.HeapInuse == nil || n.HeapInuse.Peak <= 0 {
		t.Errorf("cpu and memory: %+v", n)
	}
	if n.Connections == nil || *n.Connections != (loadgen.Span{Before: 0, Peak: 8, After: 0}) {
		t.Errorf("connections: %+v, want 0 before, 8 at the peak, 0 after (the watch waits for the closes)", n.Connections)
	}
	if n.Goroutines == nil || n.Goroutines.Peak < n.Goroutines.Before+8 {
		t.Errorf("goroutines: %+v, want a peak of 8 more than before at least", n.Goroutines)
	}
	if n.SendQueueDropped == nil || *n.SendQueueDropped != 0 || n.SlowConsumerCloses == nil || *n.SlowConsumerCloses != 0 {
		t.Errorf("drops %v, slow-consumer closes %v: want 0 and 0", n.SendQueueDropped, n.SlowConsumerCloses)
	}

	// Three "nodes" that are one server (the query tells them apart): read once, no sum.
	nodes := url + "?node=1," + url + "?node=2," + url + "?node=3"
	out, err = runBenchT(t, nil, "fanout", "-url", nodes, "-subscribers", "4", "-rate", "20", "-duration", "300ms")
	if err != nil || strings.Count(out, "  server ") != 1 || !strings.Contains(out, "server "+url+"?node=1, "+url+"?node=2, "+url+"?node=3 (http://"+r.addr+"/metrics") ||
		strings.Contains(out, "servers in sum") || !strings.Contains(out, "send-queue drops 0, slow-consumer closes 0") {
		t.Fatalf("fanout: %v\n%s", err, out)
	}

	// -metrics-listen: /metrics is not on -addr, the default says so; -metrics-url finds it.
	own := startRun(t, "-metrics-listen", "127.0.0.1:0")
	maddr := listenerAddr(t, own, "metrics listening")
	out, err = runBenchT(t, nil, "connect", "-url", own.wsURL(), "-c", "1", "-duration", "200ms")
	if err != nil || !strings.Contains(out, "metrics not available (http://"+own.addr+"/metrics: HTTP 404") {
		t.Fatalf("-metrics-listen, default -metrics-url: %v\n%s", err, out)
	}
	out, err = runBenchT(t, nil, "connect", "-url", own.wsURL(), "-c", "1", "-duration", "200ms", "-metrics-url", "http://"+maddr+"/metrics")
	if err != nil || !strings.Contains(out, "server "+own.wsURL()+" (http://"+maddr+"/metrics, 2 samples") || !strings.Contains(out, "% of one core)") {
		t.Fatalf("-metrics-url to the metrics listener: %v\n%s", err, out)
	}
}

// Drops, end to end: a subscriber that stops reading fills its send queue under "wsgate serve
// -slow-consumer drop-newest" while bench's fan-out publishes; the server drops what does not fit,
// and bench reports it from /metrics. Bench's own two subscribers read, but with a queue of 4
// they may lose some too: each publication they lost is a drop the server counted, so the drops
// are more than what they lost (the silent one's come on top), and at most one per publication
// and subscriber.
func TestBenchServerMetricsCountsDrops(t *testing.T) {
	r := startRun(t, "-send-queue-messages", "4", "-slow-consumer", "drop-newest", "-write-timeout", "30s")
	stuckSubscriber(t, r.wsURL(), "bench")

	out, err := runBenchT(t, nil, "fanout", "-url", r.wsURL(), "-subscribers", "2", "-rate", "200", "-size", "32768",
		"-duration", "1s", "-drain", "2s", "-json")
	var res loadgen.Result
	if (err != nil && exitCode(err) != exitBenchErrors) || json.Unmarshal([]byte(out), &res) != nil || res.Server == nil ||
		res.Errors != res.Lost+res.OffsetGaps {
		t.Fatalf("fanout: %v\n%s", err, out)
	}
	n := res.Server.Nodes[0]
	if n.SendQueueDropped == nil || *n.SendQueueDropped <= float64(res.Lost) || *n.SendQueueDropped > 3*float64(res.Published) ||
		n.SlowConsumerCloses == nil || *n.SlowConsumerCloses != 0 {
		t.Fatalf("drops %v (bench's subscribers lost %d of %d publications), slow-consumer closes %v: want more drops than that, at most 3 per publication, and no close",
			count(n.SendQueueDropped), res.Lost, res.Published, count(n.SlowConsumerCloses))
	}
	t.Logf("server drops %.0f; bench's subscribers lost %d of %d publications", *n.SendQueueDropped, res.Lost, res.Published)
}

// With -slow-consumer close, the silent subscriber is closed (1013) once its queue overflows:
// one slow-consumer close in bench's report, and no drop.
func TestBenchServerMetricsCountsSlowConsumerCloses(t *testing.T) {
	r := startRun(t, "-send-queue-messages", "16", "-slow-consumer", "close", "-write-timeout", "30s", "-close-timeout", "200ms")
	stuckSubscriber(t, r.wsURL(), "bench")
	out, err := runBenchT(t, nil, "fanout", "-url", r.wsURL(), "-subscribers", "2", "-rate", "400", "-size", "60000",
		"-duration", "1s", "-drain", "2s", "-json")
	var res loadgen.Result
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Server == nil {
		t.Fatalf("fanout: %v\n%s", err, out)
	}
	n := res.Server.Nodes[0]
	if n.SlowConsumerCloses == nil || *n.SlowConsumerCloses != 1 || n.SendQueueDropped == nil || *n.SendQueueDropped != 0 {
		t.Fatalf("slow-consumer closes %v, drops %v: want 1 and 0", count(n.SlowConsumerCloses), count(n.SendQueueDropped))
	}
}

// stuckSubscriber subscribes a wsgate.v1 connection with a small receive buffer to channel, reads
// the answer, and then reads nothing: its send queue on the server fills.
func stuckSubscriber(t *testing.T, url, channel string) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"wsgate.v1"}, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(4096) // little room on our side: the server's queue fills
		}
		return c, err
	}}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"subscribe","channel":`+strconv.Quote(channel)+`}`)); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, reply, err := ws.ReadMessage(); err != nil || !strings.Contains(string(reply), `"id":1`) {
		t.Fatalf("subscribe: %v %s", err, reply)
	}
}

func count(v *float64) string {
	if v == nil {
		return "absent"
	}
	return strconv.FormatFloat(*v, 'f', -1, 64)
}
