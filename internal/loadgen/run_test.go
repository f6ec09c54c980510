package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/echoserver"
	"github.com/wsgate/wsgate/protocol"
)

// TestMain fails the package if a run leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// brief is r without its time line and spectrum, for failure messages.
func brief(r *Result) string {
	c := *r
	c.Series, c.Spectrum = nil, nil
	return fmt.Sprintf("%+v", c)
}

func wsURL(hs *httptest.Server) string { return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws" }

func startEcho(t *testing.T) string {
	t.Helper()
	srv := echoserver.NewGWS()
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); _ = srv.Close() })
	return wsURL(hs)
}

// pubSubServer serves wsgate.v1 from an in-process hub, as "wsgate serve" does; the test's
// cleanup shuts both down.
func pubSubServer(t *testing.T) *wsgate.Server {
	t.Helper()
	ctx := context.Background()
	h, err := hub.New(ctx, memory.New(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := wsgate.NewServer(h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Shutdown(ctx)
		_ = h.Close(ctx)
	})
	return srv
}

// startPubSub listens on a loopback port for pubSubServer.
func startPubSub(t *testing.T) string {
	t.Helper()
	hs := httptest.NewServer(pubSubServer(t))
	t.Cleanup(hs.Close) // before the server's own cleanup: registered after it
	return wsURL(hs)
}

func short(mode Mode, url string) Config {
	return Config{Mode: mode, URL: url, Conns: 4, Duration: 300 * time.Millisecond, Interval: 50 * time.Millisecond}
}

func TestEchoSmoke(t *testing.T) {
	url := startEcho(t)
	for _, window := range []int{1, 4} {
		c := short(ModeEcho, url)
		c.Window, c.Size = window, 100
		var progress int
		c.Progress = func(Snapshot) { progress++ }
		r, err := Echo(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if r.Messages == 0 || r.Errors != 0 || r.PerConnMin == 0 || r.Jain <= 0.5 || r.Latency.P99 <= 0 ||
			r.MBPerSec <= 0 || len(r.Spectrum) == 0 || len(r.Series) == 0 || progress == 0 {
			t.Fatalf("window %d: %s (progress reports %d)", window, brief(r), progress)
		}
	}
}

func TestEchoRateIsACap(t *testing.T) {
	c := short(ModeEcho, startEcho(t))
	c.Rate, c.Duration = 200, 500*time.Millisecond
	r, err := Echo(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.Messages == 0 || r.MsgsPerSec > 260 {
		t.Fatalf("rate 200: %.0f msgs/s, %d errors", r.MsgsPerSec, r.Errors)
	}
}

// A server that accepts and then never answers: the run still ends, within its duration plus
// the drain, and says what went wrong.
func TestEchoAgainstSilentServerIsBounded(t *testing.T) {
	var mu sync.Mutex
	var held []*websocket.Conn
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err == nil {
			mu.Lock()
			held = append(held, ws)
			mu.Unlock()
		}
	}))
	t.Cleanup(func() {
		hs.Close()
		mu.Lock()
		for _, ws := range held {
			ws.Close()
		}
		mu.Unlock()
	})
	c := short(ModeEcho, wsURL(hs))
	c.Drain = 300 * time.Millisecond
	start := time.Now()
	r, err := Echo(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("took %v", took)
	}
	if r.Messages != 0 || r.IOErrors != 4 || r.FirstError == "" {
		t.Fatalf("%s", brief(r))
	}
}

func TestEchoCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c := short(ModeEcho, startEcho(t))
	c.Duration = time.Minute
	start := time.Now()
	if _, err := Echo(ctx, c); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("cancel took %v", took)
	}
}

func TestEchoSuffix(t *testing.T) {
	srv, err := wsgate.NewServer(wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		_ = c.Send(m.Type, append(append([]byte(nil), m.Data...), " done"...))
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); _ = srv.Shutdown(context.Background()) })
	c := short(ModeEcho, wsURL(hs))
	r, err := Echo(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mismatches == 0 || !strings.Contains(r.FirstError, `-suffix " done"`) {
		t.Fatalf("without -suffix: %s", brief(r))
	}
	c.Suffix = " done"
	if r, err = Echo(context.Background(), c); err != nil || r.Errors != 0 || r.Messages == 0 {
		t.Fatalf("with -suffix: %v, %v", r, err)
	}
}

func TestEchoDialFailure(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	hs.Close() // nothing listens there any more
	if _, err := Echo(context.Background(), short(ModeEcho, wsURL(hs))); err == nil || !strings.Contains(err.Error(), "every dial failed") {
		t.Fatalf("got %v", err)
	}
}

func TestIdleHoldsAndMeasures(t *testing.T) {
	c := short(ModeIdle, startEcho(t))
	c.Conns, c.Duration, c.PID = 50, 20*time.Second, os.Getpid() // the server is this process
	hold := make(chan struct{})
	c.Hold = hold
	var opened int
	c.Ready = func(n int) { opened = n; close(hold) } // let go at once
	start := time.Now()
	r, err := Idle(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if opened != 50 || r.Opened != 50 || r.Errors != 0 || r.RSSBefore == 0 || r.RSSAfter == 0 {
		t.Fatalf("%s (ready with %d)", brief(r), opened)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("hold not ended by Hold: %v", took)
	}
}

func TestIdleCountsDrops(t *testing.T) {
	srv := echoserver.NewGWS()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	c := short(ModeIdle, wsURL(hs))
	c.Conns, c.Duration = 10, 10*time.Second
	hold := make(chan struct{})
	c.Hold = hold
	c.Ready = func(int) { _ = srv.Close() } // the server drops everyone
	var once sync.Once
	c.Progress = func(s Snapshot) { // let go once every drop is counted
		if s.Errors == 10 {
			once.Do(func() { close(hold) })
		}
	}
	r, err := Idle(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != 10 || r.Errors != 10 || !strings.Contains(r.FirstError, "lost while idle") {
		t.Fatalf("%s", brief(r))
	}
}

func TestIdleBadPID(t *testing.T) {
	c := short(ModeIdle, "ws://127.0.0.1:1/ws")
	c.PID = 1 << 30
	if _, err := Idle(context.Background(), c); err == nil || !strings.Contains(err.Error(), "-pid") {
		t.Fatalf("got %v", err)
	}
}

func TestConnectSmoke(t *testing.T) {
	r, err := Connect(context.Background(), short(ModeConnect, startEcho(t)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages == 0 || r.Errors != 0 || r.MsgsPerSec <= 0 || r.Latency.P50 <= 0 {
		t.Fatalf("%s", brief(r))
	}
}

func TestFanoutWsgate(t *testing.T) {
	c := short(ModeFanout, startPubSub(t))
	c.Subscribers, c.Rate, c.Size = 20, 50, 16
	r, err := Fanout(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Published != 15 || r.Messages != 15*20 || r.Errors != 0 || r.Lost != 0 || r.Jain != 1 || r.Latency.Count != 300 {
		t.Fatalf("%s", brief(r))
	}
}

// Against three nodes of one service (three listeners on one hub, each counting its
// connections), the publisher is alone on its node and the subscribers are dealt over the other
// two; every node's figures add up to the run's.
func TestFanoutNodes(t *testing.T) {
	srv := pubSubServer(t)
	var mu sync.Mutex
	conns := map[int]int{}
	var nodes []string
	for i := range 3 {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			conns[i]++
			mu.Unlock()
			srv.ServeHTTP(w, r)
		}))
		t.Cleanup(hs.Close)
		nodes = append(nodes, wsURL(hs))
	}
	c := short(ModeFanout, "")
	c.Nodes, c.PublishNode, c.Subscribers, c.Rate = nodes, 2, 9, 50
	r, err := Fanout(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Published != 15 || r.Messages != 15*9 || r.Errors != 0 || r.URL != nodes[1] || len(r.Nodes) != 3 {
		t.Fatalf("%s", brief(r))
	}
	mu.Lock()
	got := fmt.Sprint(conns)
	mu.Unlock()
	if got != "map[0:5 1:1 2:4]" { // 9 subscribers dealt over nodes 1 and 3, round robin
		t.Errorf("connections per node %s", got)
	}
	if n := r.Nodes[0]; !n.Publisher || n.URL != nodes[1] || n.Subscribers != 0 {
		t.Errorf("publisher's node %+v", n)
	}
	for i, want := range []struct {
		url  string
		subs int
	}{{nodes[0], 5}, {nodes[2], 4}} {
		n := r.Nodes[i+1]
		if n.URL != want.url || n.Subscribers != want.subs || n.Deliveries != uint64(15*want.subs) || n.P99Micros <= 0 || n.Publisher {
			t.Errorf("node %d: %+v", i+1, n)
		}
	}
	var b bytes.Buffer
	r.Print(&b)
	if !strings.Contains(b.String(), "3 nodes (the publisher's first)") || !strings.Contains(b.String(), "the publisher, no subscribers") {
		t.Errorf("summary:\n%s", b.String())
	}
}

func TestFanoutNodesChecked(t *testing.T) {
	ok := []string{"ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"}
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Mode: ModeEcho, Nodes: ok}, "in fanout only"},
		{Config{Mode: ModeFanout, Nodes: ok, PublishNode: 3}, "-publish-node must be within 1..2"},
		{Config{Mode: ModeFanout, Nodes: []string{ok[0], "ws://192.0.2.1/ws"}}, "not a loopback address"},
		{Config{Mode: ModeFanout, URL: ok[0], PublishNode: 2}, "there is one node"},
		{Config{Mode: ModeFanout, Nodes: append(ok, "ws://127.0.0.1:3/ws"), Subscribers: 1}, "fewer than the 2 nodes"},
		{Config{Mode: ModeFanout, Nodes: make([]string, MaxNodes+1)}, "at most 16"},
	} {
		c := tc.c.WithDefaults()
		if err := c.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.c, err, tc.want)
		}
	}
}

func TestFanoutRefusedSubscribe(t *testing.T) {
	c := short(ModeFanout, startEcho(t)) // no wsgate.v1 there
	c.Subscribers = 3
	r, err := Fanout(context.Background(), c)
	if err == nil && (r.DialErrors != 3 || !strings.Contains(r.FirstError, "wsgate.v1")) {
		t.Fatalf("%s", brief(r))
	}
}

func TestFanoutCentrifugo(t *testing.T) {
	c := short(ModeFanout, startFakeCentrifugo(t))
	c.Protocol, c.Subscribers, c.Rate, c.Duration = ProtoCentrifugo, 10, 50, 400*time.Millisecond
	r, err := Fanout(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Published != 20 || r.Messages != 200 || r.Errors != 0 || r.Lost != 0 || r.OffsetGaps != 0 {
		t.Fatalf("%s", brief(r))
	}
}

// startFakeCentrifugo serves the part of Centrifugo's JSON protocol that fanout speaks: connect,
// subscribe and publish replies, and publications pushed two to a frame, one per line, with a
// ping ({}) before each pair.
func startFakeCentrifugo(t *testing.T) string {
	t.Helper()
	var mu sync.Mutex
	subs := map[*websocket.Conn]*sync.Mutex{}
	var pending [][]byte
	var offset int
	idRe := regexp.MustCompile(`^\{"id":(\d+),"(connect|subscribe|publish)"`)
	dataRe := regexp.MustCompile(`"data":(\{.*\})\}\}$`)
	var wg sync.WaitGroup
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wmu := &sync.Mutex{}
		write := func(ws *websocket.Conn, wmu *sync.Mutex, b []byte) {
			wmu.Lock()
			defer wmu.Unlock()
			_ = ws.WriteMessage(websocket.TextMessage, b)
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.Close()
		for {
			_, frame, err := ws.ReadMessage()
			if err != nil {
				mu.Lock()
				delete(subs, ws)
				mu.Unlock()
				return
			}
			m := idRe.FindSubmatch(frame)
			if m == nil {
				continue // a pong
			}
			switch string(m[2]) {
			case "connect":
				write(ws, wmu, []byte(`{"id":`+string(m[1])+`,"connect":{"client":"c","version":"0.0.0"}}`))
			case "subscribe":
				mu.Lock()
				subs[ws] = wmu
				mu.Unlock()
				write(ws, wmu, []byte(`{"id":`+string(m[1])+`,"subscribe":{}}`))
			case "publish":
				d := dataRe.FindSubmatch(frame)
				mu.Lock()
				offset++
				pending = append(pending, []byte(`{"push":{"channel":"bench","pub":{"data":`+string(d[1])+`,"offset":`+strconv.Itoa(offset)+`}}}`))
				var out []byte
				if len(pending) == 2 {
					out = append([]byte("{}\n"), bytes.Join(pending, []byte("\n"))...)
					pending = nil
				}
				targets := map[*websocket.Conn]*sync.Mutex{}
				for k, v := range subs {
					targets[k] = v
				}
				mu.Unlock()
				write(ws, wmu, []byte(`{"id":`+string(m[1])+`,"publish":{}}`))
				if out != nil {
					for sws, smu := range targets {
						write(sws, smu, out)
					}
				}
			}
		}
	}))
	t.Cleanup(func() { hs.CloseClientConnections(); hs.Close(); wg.Wait() })
	return wsURL(hs)
}

func TestHTMLIsSelfContained(t *testing.T) {
	r, err := Echo(context.Background(), short(ModeEcho, startEcho(t)))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, "echo <report>", "wsgate bench echo", []Named{{"gws", r}, {"again", r}}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{"<!doctype html>", "echo &lt;report&gt;", "Latency by percentile", "Throughput over time", "<svg"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// No external resources: nothing loaded by src or href, no URL but the SVG namespace.
	if regexp.MustCompile(`(?i)\b(src|href)=|<script|<link|@import|url\(`).MatchString(s) {
		t.Error("report refers to an external resource")
	}
	if n := strings.Count(s, "http://") + strings.Count(s, "https://"); n != strings.Count(s, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Error("report holds a URL other than the SVG namespace")
	}
}
