package pubsub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/client/pubsub"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// TestMain fails the package if a test leaves a goroutine behind: Run must wait for its reader
// and its timers whatever way it ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is one wsgate server on a loopback port, serving a hub's channels.
type node struct {
	url string
	srv *wsgate.Server
	hs  *httptest.Server
}

// newHub is an in-memory hub, closed at cleanup. Nodes that share one share their channels and
// history, as the nodes of a cluster share a broker.
func newHub(t *testing.T) *hub.Hub {
	h, err := hub.New(context.Background(), memory.New(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func startNode(t *testing.T, h wsgate.Handler) *node {
	srv, err := wsgate.NewServer(h, &wsgate.Config{
		Subprotocols: []string{protocol.Subprotocol},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{srv: srv, hs: httptest.NewServer(srv)}
	n.url = "ws" + strings.TrimPrefix(n.hs.URL, "http")
	t.Cleanup(n.kill)
	return n
}

// kill drops every connection without a close frame (the client sees 1006) and refuses new ones.
func (n *node) kill() {
	_ = n.srv.Close()
	n.hs.Close()
}

// recorder collects what a session's callbacks are given.
type recorder struct {
	mu         sync.Mutex
	pubs       []pubsub.Publication
	subscribed []pubsub.Subscribed
	gaps       []pubsub.Gap
	errs       []error
}

func (r *recorder) options(o *pubsub.Options) *pubsub.Options {
	o.OnPublication = func(p pubsub.Publication) { r.mu.Lock(); r.pubs = append(r.pubs, p); r.mu.Unlock() }
	o.OnSubscribed = func(s pubsub.Subscribed) { r.mu.Lock(); r.subscribed = append(r.subscribed, s); r.mu.Unlock() }
	o.OnGap = func(g pubsub.Gap) { r.mu.Lock(); r.gaps = append(r.gaps, g); r.mu.Unlock() }
	o.OnError = func(_ string, err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }
	return o
}

// waitFor polls until cond holds (under the recorder's lock), failing after 10 s.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("timed out waiting for %s; publications %+v, subscribes %+v, gaps %+v, errors %v", what, r.pubs, r.subscribed, r.gaps, r.errs)
		}
	}
}

// run starts s.Run; at cleanup it cancels it and checks that it returned nil.
func run(t *testing.T, s *pubsub.Session) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }() // owner: the test; cancelled and waited for at cleanup
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// publish publishes data through s, retrying while it is between connections.
func publish(t *testing.T, s *pubsub.Session, channel, data string) pubsub.Position {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pos, err := s.Publish(ctx, channel, json.RawMessage(fmt.Sprintf("%q", data)))
		cancel()
		if err == nil {
			return pos
		}
		if !errors.Is(err, pubsub.ErrNotConnected) || time.Now().After(deadline) {
			t.Fatalf("publish %q: %v", data, err)
		}
	}
}

func quick() *pubsub.Options {
	return &pubsub.Options{MinDelay: 20 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
}

// TestFailoverToAnotherNode: three nodes, each with a broker of its own. The node in use is killed,
// twice; the session moves to one still up, subscribes again there (recovery is refused plainly:
// another broker) and a publication made there after the move arrives.
func TestFailoverToAnotherNode(t *testing.T) {
	nodes := []*node{startNode(t, newHub(t).Handler(nil)), startNode(t, newHub(t).Handler(nil)), startNode(t, newHub(t).Handler(nil))}
	urls := []string{nodes[0].url, nodes[1].url, nodes[2].url}
	var r recorder
	s, err := pubsub.New(urls, r.options(quick()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe("chat", nil); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	killed := map[string]bool{}
	for round := 1; round <= 3; round++ {
		r.waitFor(t, fmt.Sprintf("subscribe %d", round), func() bool { return len(r.subscribed) == round })
		r.mu.Lock()
		sub := r.subscribed[round-1]
		r.mu.Unlock()
		if killed[sub.URL] || sub.Resubscribed != (round > 1) || sub.Recovered {
			t.Fatalf("subscribe %d: %+v; killed so far %v", round, sub, killed)
		}
		data := fmt.Sprint("on node ", round)
		pos := publish(t, s, "chat", data)
		r.waitFor(t, "the publication on the node", func() bool { return len(r.pubs) == round })
		r.mu.Lock()
		got := r.pubs[round-1]
		r.mu.Unlock()
		if string(got.Data) != fmt.Sprintf("%q", data) || got.Offset != pos.Offset || got.Epoch != pos.Epoch || got.Recovered {
			t.Fatalf("publication %+v, published at %+v", got, pos)
		}
		if round < 3 {
			for _, n := range nodes {
				if n.url == sub.URL {
					n.kill()
				}
			}
			killed[sub.URL] = true
		}
	}
}

// TestRecoveryThroughAnotherNode: two nodes share one hub (one broker). The node in use dies, four
// publications are made meanwhile; the session moves to the other node and recovers them, once,
// in order, before the live ones.
func TestRecoveryThroughAnotherNode(t *testing.T) {
	h := newHub(t)
	a, b := startNode(t, h.Handler(nil)), startNode(t, h.Handler(nil))
	var r recorder
	o := r.options(quick())
	o.InOrder = true
	o.MinDelay, o.MaxDelay, o.Random = 300*time.Millisecond, time.Second, func() float64 { return 0.99 } // the move waits ~300 ms
	s, _ := pubsub.New([]string{a.url, b.url}, o)
	_ = s.Subscribe("news", nil)
	run(t, s)
	ctx := context.Background()
	r.waitFor(t, "the subscribe", func() bool { return len(r.subscribed) == 1 })
	_, _ = h.Publish(ctx, "news", []byte(`1`))
	r.waitFor(t, "one live publication", func() bool { return len(r.pubs) == 1 })

	a.kill()
	for i := 2; i <= 5; i++ {
		if _, err := h.Publish(ctx, "news", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	r.waitFor(t, "the subscribe on the other node", func() bool { return len(r.subscribed) == 2 })
	_, _ = h.Publish(ctx, "news", []byte(`6`))
	r.waitFor(t, "six publications", func() bool { return len(r.pubs) == 6 })
	r.mu.Lock()
	defer r.mu.Unlock()
	again := r.subscribed[1]
	epoch := r.subscribed[0].Epoch
	if again.URL != b.url || !again.Recovered || !again.Resubscribed || *again.Since != (pubsub.Position{Epoch: epoch, Offset: 1}) || again.Offset != 5 {
		t.Fatalf("the subscribe after the move: %+v", again)
	}
	for i, p := range r.pubs {
		if p.Offset != uint64(i+1) || string(p.Data) != fmt.Sprint(i+1) || p.Recovered != (i >= 1 && i <= 4) {
			t.Fatalf("publication %d: %+v; want offset %d, recovered only from 2 to 5", i, p, i+1)
		}
	}
	if len(r.gaps)+len(r.errs) != 0 {
		t.Fatalf("gaps %+v, errors %v", r.gaps, r.errs)
	}
}

// scripted is a wsgate.v1 server whose answers come from answer, one call per request.
func scripted(t *testing.T, answer func(req protocol.Request, send func(string))) *node {
	return startNode(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		req, perr := protocol.Parse(m.Data)
		if perr != nil {
			t.Errorf("request %s: %v", m.Data, perr)
			return
		}
		answer(req, func(frame string) { _ = c.Send(wsgate.Text, []byte(frame)) })
	}))
}

// TestNewEpochBeyondOne: a clustered server names no epoch before the first publication (the
// subscribe reply says epoch "" offset 0). A first push of a new epoch at offset 3, or a gap push
// in it, means the earlier ones were missed: they come from history, from {epoch, 0}, in order.
// A resubscribe from the empty position asks for it as it is.
func TestNewEpochBeyondOne(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	n := scripted(t, func(req protocol.Request, send func(string)) {
		mu.Lock()
		since := "none"
		if req.Since != nil {
			since = fmt.Sprintf("%q/%d", req.Since.Epoch, req.Since.Offset)
		}
		asked = append(asked, fmt.Sprintf("%s %s %s %d", req.Op, req.Channel, since, req.Limit))
		mu.Unlock()
		switch {
		case req.Op == protocol.OpSubscribe && req.Since == nil:
			send(fmt.Sprintf(`{"id":%d,"result":{"epoch":"","offset":0,"recovered":false}}`, req.ID))
			if req.Channel == "a" {
				send(`{"push":"pub","channel":"a","epoch":"E","offset":3,"data":"d3"}`)
			} else if req.Channel == "b" {
				send(`{"push":"gap","channel":"b","epoch":"F","offset":2}`)
			}
		case req.Op == protocol.OpHistory:
			send(fmt.Sprintf(`{"id":%d,"result":{"epoch":%q,"offset":3,"complete":true,"publications":[{"offset":1,"data":"d1"},{"offset":2,"data":"d2"}]}}`, req.ID, req.Since.Epoch))
			if req.Channel == "a" {
				send(`{"push":"pub","channel":"a","epoch":"E","offset":4,"data":"d4"}`)
			}
		case req.Op == protocol.OpSubscribe: // c, again, from the empty position
			send(fmt.Sprintf(`{"id":%d,"result":{"epoch":"G","offset":2,"recovered":true,"publications":[{"offset":1,"data":"g1"},{"offset":2,"data":"g2"}]}}`, req.ID))
		}
	})
	var r recorder
	s, _ := pubsub.New([]string{n.url}, r.options(quick()))
	_ = s.Subscribe("a", nil)
	_ = s.Subscribe("b", nil)
	_ = s.Subscribe("c", &pubsub.Position{})
	run(t, s)
	r.waitFor(t, "the catch-ups", func() bool { return len(r.pubs) == 8 })
	r.mu.Lock()
	defer r.mu.Unlock()
	var got []string
	for _, p := range r.pubs {
		got = append(got, fmt.Sprintf("%s %s/%d %s %v", p.Channel, p.Epoch, p.Offset, p.Data, p.Recovered))
	}
	want := []string{
		`a E/1 "d1" true`, `a E/2 "d2" true`, `a E/3 "d3" false`, `a E/4 "d4" false`,
		`b F/1 "d1" true`, `b F/2 "d2" true`,
		`c G/1 "g1" true`, `c G/2 "g2" true`,
	}
	if fmt.Sprint(sortByChannel(got)) != fmt.Sprint(want) {
		t.Fatalf("delivered\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, w := range []string{`history a "E"/0 2`, `history b "F"/0 2`, `subscribe c ""/0 0`} {
		if !strings.Contains(strings.Join(asked, "\n"), w) {
			t.Errorf("requests %q: want %q among them", asked, w)
		}
	}
	if len(r.gaps) != 0 {
		t.Errorf("gaps %+v", r.gaps)
	}
}

// sortByChannel orders lines by their first word, keeping the order within one (a stable sort).
func sortByChannel(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, ch := range []string{"a ", "b ", "c "} {
		for _, l := range lines {
			if strings.HasPrefix(l, ch) {
				out = append(out, l)
			}
		}
	}
	return out
}

// TestRunGivesUp: with MaxAttempts, Run returns once that many rounds over the endpoints found
// none answering; after a loss, the error says how the last connection ended.
func TestRunGivesUp(t *testing.T) {
	n := startNode(t, newHub(t).Handler(nil))
	dead := startNode(t, newHub(t).Handler(nil))
	dead.kill()
	o := quick()
	o.MaxAttempts, o.InOrder = 1, true
	connected := make(chan string, 4)
	o.OnConnect = func(url string) { connected <- url }
	s, _ := pubsub.New([]string{dead.url, n.url}, o)
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }() // owner: the test; ends when both nodes are gone, waited below
	if got := <-connected; got != n.url {
		t.Fatalf("connected to %s, want %s: the dead one is passed over", got, n.url)
	}
	// OnConnect comes with the 101, which the server writes before it registers the connection:
	// killed in between, the server would close it 1001 from its registry instead of dropping it.
	for deadline := time.Now().Add(5 * time.Second); n.srv.Stats().Connections == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the server never registered the connection")
		}
		time.Sleep(time.Millisecond)
	}
	n.kill()
	err := <-done
	var ce *wsgate.CloseError
	var he *client.HandshakeError
	if !errors.As(err, &ce) || ce.Code != wsgate.CloseAbnormal || !errors.As(err, &he) && !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Run: %v; want the loss (1006) and the failed dials", err)
	}
	if _, err := s.Publish(context.Background(), "x", json.RawMessage(`1`)); !errors.Is(err, pubsub.ErrNotConnected) {
		t.Fatalf("Publish after Run: %v", err)
	}
}

// TestTerminalClose: a close code that says do not come back (1008) ends Run with it.
func TestTerminalClose(t *testing.T) {
	n := startNode(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		_ = c.Close(wsgate.ClosePolicyViolation, "go away")
	}))
	s, _ := pubsub.New([]string{n.url}, quick())
	_ = s.Subscribe("x", nil)
	err := s.Run(context.Background())
	var ce *wsgate.CloseError
	if !errors.As(err, &ce) || ce.Code != wsgate.ClosePolicyViolation || ce.Reason != "go away" {
		t.Fatalf("Run: %v; want the 1008 close", err)
	}
}

// TestRetryAfterIsHonoured: the session's dial is shed (503, Retry-After: 1) by a wsgate whose
// MaxHandshakeRate another client has just used up. The session comes back once, after the wait
// the server asked for, rather than every MinDelay (20 ms) with backoff.
func TestRetryAfterIsHonoured(t *testing.T) {
	srv, err := wsgate.NewServer(newHub(t).Handler(nil), &wsgate.Config{
		Subprotocols:     []string{protocol.Subprotocol},
		MaxHandshakeRate: 1,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var upgrades atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upgrades.Add(1)
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { _ = srv.Close(); hs.Close() })
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	first, _, err := client.Dial(context.Background(), url, nil) // uses up this second's handshake
	if err != nil {
		t.Fatal(err)
	}
	defer first.CloseNow()
	connected := make(chan time.Time, 1)
	o := quick()
	o.OnConnect = func(string) { connected <- time.Now() }
	s, _ := pubsub.New([]string{url}, o)
	start := time.Now()
	run(t, s)
	select {
	case at := <-connected:
		if took := at.Sub(start); took < 900*time.Millisecond {
			t.Fatalf("connected after %v: the Retry-After of the refusal was not waited for", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session never connected")
	}
	if n := upgrades.Load(); n != 3 { // the first client's, the shed one, the one after the wait
		t.Fatalf("%d upgrade requests, want 3: one shed, then one after Retry-After", n)
	}
}
