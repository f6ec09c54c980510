package hub_test

// Hostile and racing clients of issue 9, each through real sockets from an independent client
// (gorilla/websocket).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/hub/brokertest"
	"github.com/wsgate/wsgate/protocol"
)

// heapBytes is the live heap after a collection.
func heapBytes() int64 {
	// Twice: the first moves sync.Pools' contents to their victim caches, the second frees them,
	// so that buffers pooled by connections that ended are not counted.
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestReadingUnusedChannelsCostsNothing: history, presence and a subscribe/unsubscribe of 20,000
// new names from one connection leave nothing behind (each history read kept a 9 KB ring for 5
// minutes: 190 MB).
func TestReadingUnusedChannelsCostsNothing(t *testing.T) {
	b := memory.New(nil)
	e := startOn(t, b, &hub.Options{RequestRate: -1}, nil)
	c := e.dial(t)
	c.call("ping", ``, nil)
	before := heapBytes()
	const n = 20000
	go func() { // owner: the test; pipelined requests, the replies are read below
		for i := 1; i <= n; i++ {
			if c.ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"id":%d,"op":"history","channel":"unused-%d","since":{"epoch":"x","offset":9},"limit":1000}`, i, i))) != nil {
				return
			}
		}
	}()
	for i := 1; i <= n; i++ {
		m := c.next()
		var h protocol.HistoryResult
		if err := json.Unmarshal(m["result"], &h); err != nil || h.Complete || len(h.Publications) != 0 {
			t.Fatalf("history of an unused channel: %v", strMap(m))
		}
	}
	c.id = n
	for i := range 200 {
		c.call("subscribe", fmt.Sprintf(`,"channel":"s%d"`, i), nil)
		c.call("unsubscribe", fmt.Sprintf(`,"channel":"s%d"`, i), nil)
		c.call("presence", fmt.Sprintf(`,"channel":"p%d"`, i), nil)
	}
	grown := heapBytes() - before
	if st := b.Stats(); st.Channels != 0 || st.Bytes != 0 {
		t.Fatalf("the broker keeps %+v after reads only", st)
	}
	if grown > 8<<20 {
		t.Fatalf("20,000 history requests grew the heap by %d bytes", grown)
	}
	t.Logf("heap grew by %d bytes over 20,600 requests on unused channels", grown)
}

// TestHistoryCapReached: a client filling the history does not stop publications: the oldest
// history makes room and what the broker holds stays under the cap. Only a publication bigger
// than the cap gets a clear error (202).
func TestHistoryCapReached(t *testing.T) {
	b := memory.New(&memory.Options{MaxBytes: 1 << 20})
	e := startOn(t, b, &hub.Options{RequestRate: -1}, nil)
	c := e.dial(t)
	data := `"` + strings.Repeat("x", 60<<10) + `"`
	for i := range 40 {
		if r := c.call("publish", fmt.Sprintf(`,"channel":"c%d","data":%s`, i%3, data), nil); r["error"] != nil {
			t.Fatalf("publication %d of 60 KB under a 1 MiB cap: %s", i, r["error"])
		}
	}
	if st := b.Stats(); st.Bytes > 1<<20 {
		t.Fatalf("the broker holds %d bytes under a 1 MiB cap", st.Bytes)
	}
	small := startOn(t, memory.New(&memory.Options{MaxBytes: 32 << 10}), &hub.Options{RequestRate: -1}, nil)
	r := small.dial(t).call("publish", `,"channel":"c","data":`+data, nil)
	if code := errCode(t, r); code != protocol.CodeFull {
		t.Fatalf("60 KB under a 32 KiB cap: error %d, want %d", code, protocol.CodeFull)
	}
}

// TestLargeHistoryIsPaged: 100 publications of 64 KiB (6.4 MB) against a 1 MiB send queue: the
// history reply and the recovering subscribe come in pages that fit, and paging through them
// yields every publication once, in order (before, no reply came at all).
func TestLargeHistoryIsPaged(t *testing.T) {
	e := start(t, &hub.Options{RequestRate: -1}, nil)
	pub := e.dial(t)
	data := `"` + strings.Repeat("y", 60<<10) + `"` // the request fits the default read limit, 64 KiB
	var first protocol.Position
	for i := range 100 {
		r := pub.call("publish", `,"channel":"big","data":`+data, nil)
		if i == 0 {
			json.Unmarshal(r["result"], &first)
		}
	}
	c := e.dial(t)
	r := &recoverer{t: t, e: e, c: c, channel: "big", epoch: first.Epoch}
	rep := c.call("history", `,"channel":"big","limit":1000,"since":{"epoch":"`+first.Epoch+`","offset":0}`, nil)
	var h protocol.HistoryResult
	json.Unmarshal(rep["result"], &h)
	if !h.More || len(h.Publications) == 0 || len(h.Publications) >= 100 {
		t.Fatalf("first page: %d publications, more %v", len(h.Publications), h.More)
	}
	r.fill(100)

	// A recovering subscribe from the start: a first page in the reply, the rest from history.
	sub := e.dial(t)
	rep = sub.call("subscribe", `,"channel":"big","since":{"epoch":"`+first.Epoch+`","offset":0}`, nil)
	var res protocol.SubscribeResult
	json.Unmarshal(rep["result"], &res)
	if !res.Recovered || !res.More || len(res.Publications) == 0 || res.Publications[0].Offset != 1 || res.Offset != 100 {
		t.Fatalf("recovering subscribe: recovered %v more %v, %d publications, top %d", res.Recovered, res.More, len(res.Publications), res.Offset)
	}
	r2 := &recoverer{t: t, e: e, c: sub, channel: "big", epoch: first.Epoch, last: res.Publications[len(res.Publications)-1].Offset}
	r2.fill(100)
	pub.call("publish", `,"channel":"big","data":1`, nil)
	r2.readUntil(101) // live publications follow, with no gap
}

// TestReplyThatCannotBeQueuedClosesTheConnection: a client that pipelines requests and does not
// read is slowed down (the hub waits for room in its queue before each request) and, once a
// reply still cannot be queued after RequestTimeout, closed with 1013 — even under
// PolicyDropNewest, which would have dropped it silently. It is never left waiting for a reply.
func TestReplyThatCannotBeQueuedClosesTheConnection(t *testing.T) {
	e := start(t, &hub.Options{RequestRate: -1, RequestTimeout: 200 * time.Millisecond},
		&wsgate.Config{SlowConsumer: wsgate.PolicyDropNewest, SendQueueMessages: 4})
	if _, err := e.hub.Publish(context.Background(), "h", []byte(`"`+strings.Repeat("h", 60<<10)+`"`)); err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	ws, _, err := d.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// Pipelined history requests, unread: once the socket buffers are full and 4 replies wait,
	// the next one cannot be queued.
	go func() { // owner: the test; ends when the connection fails
		for i := 1; i <= 5000; i++ {
			if ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"id":%d,"op":"history","channel":"h","limit":1}`, i))) != nil {
				return
			}
		}
	}()
	time.Sleep(time.Second) // not reading: the socket buffers and the queue fill
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	replies := 0
	for {
		_, p, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != int(wsgate.CloseTryAgainLater) {
				t.Fatalf("after %d replies: %v, want close 1013", replies, err)
			}
			return
		}
		if !strings.Contains(string(p), `"result"`) {
			t.Fatalf("unexpected frame %.200s", p)
		}
		replies++
	}
}

// TestSlowRequestDoesNotHoldBackPublications: while a request waits on a slow Authorize hook (or
// a remote broker), publications to the same client flow; they were all held back until the
// request returned, and a burst cut a client that read as fast as it could.
func TestSlowRequestDoesNotHoldBackPublications(t *testing.T) {
	slow := make(chan struct{})
	e := start(t, &hub.Options{RequestRate: -1, Authorize: func(_ context.Context, _ *wsgate.Conn, _ *hub.Identity, req *protocol.Request) error {
		if req.Op == protocol.OpHistory {
			<-slow
		}
		return nil
	}}, &wsgate.Config{SendQueueMessages: 64})
	c := e.dial(t)
	c.call("subscribe", `,"channel":"s"`, nil)
	c.send(`{"id":9,"op":"history","channel":"s"}`)
	time.Sleep(50 * time.Millisecond) // the request is inside the hook
	for i := range 1000 {
		if _, err := e.hub.Publish(context.Background(), "s", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond) // a burst a reading client keeps up with
		}
	}
	close(slow)
	r := &recoverer{t: t, e: e, c: c, channel: "s", epoch: ""}
	r.readUntil(1000)
	if r.reconnects > 0 || r.gaps > 0 {
		t.Fatalf("%d reconnects and %d gaps for a client that read all along", r.reconnects, r.gaps)
	}
}

// TestDropOldestKeepsReplies: under PolicyDropOldest, publications that overflow a client's queue
// evict older publications, never a reply it waits for.
func TestDropOldestKeepsReplies(t *testing.T) {
	asked := make(chan struct{}, 1)
	e := start(t, &hub.Options{RequestRate: -1, Authorize: func(_ context.Context, _ *wsgate.Conn, _ *hub.Identity, req *protocol.Request) error {
		if req.Op == protocol.OpPresence {
			asked <- struct{}{}
		}
		return nil
	}}, &wsgate.Config{SlowConsumer: wsgate.PolicyDropOldest, SendQueueMessages: 8,
		// The client reads nothing until the end: under a loaded machine that can outlast the
		// default write timeout (10 s), which would close it before its request is read.
		WriteTimeout: 2 * time.Minute, PingInterval: -1})
	c := e.dialPaused(t)
	c.send(`{"id":1,"op":"subscribe","channel":"k"}`)
	if _, p, err := c.ws.ReadMessage(); err != nil || !strings.Contains(string(p), `"id":1`) {
		t.Fatalf("subscribe: %s %v", p, err)
	}
	data := `"` + strings.Repeat("k", 60000) + `"`
	burst := func() {
		for range 150 { // 9 MB at a reader that does not read: the queue of 8 evicts
			if _, err := e.hub.Publish(context.Background(), "k", []byte(data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	burst()
	c.send(`{"id":2,"op":"presence","channel":"k"}`)
	select {
	case <-asked:
	case <-time.After(time.Minute):
		t.Fatalf("the presence request never reached the hook (server stats %+v)", e.srv.Stats())
	}
	time.Sleep(50 * time.Millisecond) // the reply is queued right after the hook returns
	dropped := e.srv.Stats().Dropped
	burst()
	if e.srv.Stats().Dropped == dropped {
		t.Fatal("nothing was evicted after the reply was queued")
	}
	c.id = 2
	c.run()
	for {
		if m := c.next(); string(m["id"]) == "2" {
			return // the reply survived the evictions
		}
	}
}

// TestRepliesThatEvictLeaveNoSilentGap: under PolicyDropOldest, a quiet channel's last publication
// evicted by later traffic, publications or replies, is announced (a gap push). Every send of the
// hub's checks for evictions (Hub.checkEvicted); this test does not tell which send evicted it.
func TestRepliesThatEvictLeaveNoSilentGap(t *testing.T) {
	e := start(t, &hub.Options{RequestRate: -1}, &wsgate.Config{SlowConsumer: wsgate.PolicyDropOldest, SendQueueMessages: 8})
	c := e.dialPaused(t)
	for i, ch := range []string{"other", "k"} {
		c.send(fmt.Sprintf(`{"id":%d,"op":"subscribe","channel":%q}`, i+1, ch))
		if _, p, err := c.ws.ReadMessage(); err != nil || !strings.Contains(string(p), `"result"`) {
			t.Fatalf("subscribe %s: %s %v", ch, p, err)
		}
	}
	data := `"` + strings.Repeat("o", 60000) + `"`
	for range 150 { // the socket buffers fill, then the queue of 8
		if _, err := e.hub.Publish(context.Background(), "other", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	// k's publication is the newest in the queue; 40 replies follow, each evicting the oldest.
	k, _ := e.hub.Publish(context.Background(), "k", []byte(`"quiet"`))
	for i := 3; i < 43; i++ {
		c.send(fmt.Sprintf(`{"id":%d,"op":"ping"}`, i))
	}
	c.id = 42
	c.run()
	// Every ping gets its reply (replies are pinned); the pushes among them are kept, in order.
	r := &recoverer{t: t, e: e, c: c, channel: "k", epoch: k.Epoch}
	for replies := 0; replies < 40; {
		m := c.next()
		if m["push"] != nil {
			r.backlog = append(r.backlog, m)
		} else if m["result"] != nil {
			replies++
		} else {
			t.Fatalf("ping refused: %v", strMap(m))
		}
	}
	r.readUntil(k.Offset) // its publication, or a gap push and then history
}

// TestGapsAreVisible: with PolicyDropNewest, publications a slow subscriber's queue refuses are
// not silently lost: the next one it gets jumps in offset, and history gives it the missing ones.
func TestGapsAreVisible(t *testing.T) {
	for _, policy := range []wsgate.SlowConsumerPolicy{wsgate.PolicyDropNewest, wsgate.PolicyDropOldest} {
		t.Run(policy.String(), func(t *testing.T) { testGapsAreVisible(t, policy) })
	}
}

func testGapsAreVisible(t *testing.T, policy wsgate.SlowConsumerPolicy) {
	e := startOn(t, memory.New(&memory.Options{HistorySize: 1000, MaxBytes: 64 << 20}), &hub.Options{RequestRate: -1},
		&wsgate.Config{SlowConsumer: policy, SendQueueMessages: 8})
	c := e.dialPaused(t)
	c.send(`{"id":1,"op":"subscribe","channel":"g"}`)
	_, p, err := c.ws.ReadMessage()
	var rep map[string]json.RawMessage
	json.Unmarshal(p, &rep)
	var sub protocol.SubscribeResult
	if err != nil || json.Unmarshal(rep["result"], &sub) != nil {
		t.Fatalf("subscribe: %s %v", p, err)
	}
	c.send(`{"id":2,"op":"subscribe","channel":"other"}`)
	if _, p, err := c.ws.ReadMessage(); err != nil || !strings.Contains(string(p), `"result"`) {
		t.Fatalf("subscribe: %s %v", p, err)
	}
	c.id = 2
	// 300 publications of 60 KB at once: more than the socket buffers and a queue of 8 hold.
	data := `"` + strings.Repeat("z", 60000) + `"`
	for range 300 {
		if _, err := e.hub.Publish(context.Background(), "g", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	// A second channel, published last: with drop-oldest its publications evict the first
	// channel's last ones, and nothing later on that channel would show the jump.
	for range 20 {
		e.hub.Publish(context.Background(), "other", []byte(data))
	}
	if st := e.srv.Stats(); st.Dropped == 0 {
		t.Fatal("19 MB published at once to a queue of 8, and nothing was dropped")
	}
	c.run()
	r := &recoverer{t: t, e: e, c: c, channel: "g", epoch: sub.Epoch}
	r.readUntil(300)
	if r.gaps == 0 {
		t.Fatal("publications were dropped, yet no offset jumped")
	}
	t.Logf("%d gaps seen and filled from history", r.gaps)
}

// TestBrokerInterestRaces: subscribe/unsubscribe churn on one channel from many connections, and a
// failing broker Subscribe, keep the interest contract: one interest call per channel at a time,
// never a stale unsubscribe after a new subscribe, and interest exactly while there are
// subscribers.
func TestBrokerInterestRaces(t *testing.T) {
	w := brokertest.NewInterest(memory.New(nil))
	w.Delay = time.Millisecond
	var failed sync.Once
	w.Fail = func(ch string) error {
		err := errors.New("injected failure")
		ok := false
		failed.Do(func() { ok = true })
		if ok {
			return err
		}
		return nil
	}
	e := startOn(t, w, &hub.Options{RequestRate: -1}, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		c := e.dial(t)
		wg.Go(func() {
			for i := range 40 {
				r := c.call("subscribe", `,"channel":"hot"`, nil)
				if r["error"] != nil {
					if code := errCode(t, r); code != protocol.CodeUnavailable {
						t.Errorf("client %d: subscribe error %d", g, code)
					}
					continue
				}
				if !w.Subscribed("hot") {
					t.Errorf("client %d: subscribed while the broker holds no interest", g)
				}
				if i%3 != 2 || g == 0 {
					c.call("unsubscribe", `,"channel":"hot"`, nil)
				} else {
					c.ws.Close() // a disconnect is an unsubscribe too
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for w.Subscribed("hot") || len(e.hub.Presence("hot")) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("interest %v with %d subscribers left", w.Subscribed("hot"), len(e.hub.Presence("hot")))
		}
		time.Sleep(2 * time.Millisecond)
	}
	last := e.dial(t)
	last.call("subscribe", `,"channel":"hot"`, nil)
	if !w.Subscribed("hot") {
		t.Fatal("a subscriber without the broker's interest")
	}
	e.hub.Publish(context.Background(), "hot", []byte(`"live"`))
	if p := last.push("pub"); string(p["data"]) != `"live"` {
		t.Fatalf("publication after the churn: %v", strMap(p))
	}
	if v := w.Violations(); len(v) > 0 {
		t.Fatalf("interest contract broken %d times, first: %s", len(v), v[0])
	}
}

// TestServerSubscribeRacingClose: a server-side Subscribe racing the connection's close leaves no
// ghost subscriber or presence entry (2–7 in 300 before).
func TestServerSubscribeRacingClose(t *testing.T) {
	w := brokertest.NewInterest(memory.New(nil))
	e := startOn(t, w, &hub.Options{RequestRate: -1}, nil)
	for i := range 300 {
		c := e.dial(t)
		c.call("ping", ``, nil)
		var conn *wsgate.Conn
		e.srv.Range(func(x *wsgate.Conn) bool {
			if x.RemoteAddr().String() == c.ws.LocalAddr().String() {
				conn = x
			}
			return conn == nil
		})
		var wg sync.WaitGroup
		wg.Go(func() { _ = e.hub.Subscribe(context.Background(), conn, fmt.Sprint("r", i%7)) })
		conn.CloseNow()
		wg.Wait()
	}
	deadline := time.Now().Add(5 * time.Second)
	for ch := range 7 {
		name := fmt.Sprint("r", ch)
		for len(e.hub.Presence(name)) != 0 || w.Subscribed(name) {
			if time.Now().After(deadline) {
				t.Fatalf("channel %s: %d ghosts, interest %v", name, len(e.hub.Presence(name)), w.Subscribed(name))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// TestPublishInvalidUTF8: Hub.Publish refuses JSON with invalid UTF-8 (it panicked on a nil
// prepared message).
func TestPublishInvalidUTF8(t *testing.T) {
	e := start(t, nil, nil)
	c := e.dial(t)
	c.call("subscribe", `,"channel":"u"`, nil)
	var perr *protocol.Error
	if _, err := e.hub.Publish(context.Background(), "u", []byte("\"\xff\"")); !errors.As(err, &perr) || perr.Code != protocol.CodeBadRequest {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	e.hub.Publish(context.Background(), "u", []byte(`"ok"`))
	if p := c.push("pub"); string(p["data"]) != `"ok"` {
		t.Fatalf("after the refusal: %v", strMap(p))
	}
}

// TestConnDataStaysTheApplications: an Authorize hook that sets the connection's Data does not
// break routing nor leak subscriptions.
func TestConnDataStaysTheApplications(t *testing.T) {
	w := brokertest.NewInterest(memory.New(nil))
	e := startOn(t, w, &hub.Options{Authorize: func(_ context.Context, c *wsgate.Conn, _ *hub.Identity, _ *protocol.Request) error {
		c.SetData("the application's session")
		return nil
	}}, nil)
	c := e.dial(t)
	c.call("subscribe", `,"channel":"d"`, nil)
	c.call("publish", `,"channel":"d","data":1`, nil)
	if r := c.call("ping", ``, nil); r["result"] == nil {
		t.Fatalf("ping after SetData: %v", strMap(r))
	}
	c.ws.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.hub.Presence("d")) != 0 || w.Subscribed("d") {
		if time.Now().After(deadline) {
			t.Fatal("the subscription outlived its connection")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestRequestRate: requests beyond the connection's rate get error 203, addressed to them; the
// connection stays open and is served again once the bucket refills.
func TestRequestRate(t *testing.T) {
	e := start(t, &hub.Options{RequestRate: 1, RequestBurst: 10}, nil)
	c := e.dial(t)
	limited := 0
	for range 30 {
		r := c.call("ping", ``, nil)
		if r["error"] != nil {
			if code := errCode(t, r); code != protocol.CodeRateLimited {
				t.Fatalf("error %d", code)
			}
			limited++
		}
	}
	if limited < 15 { // 20, unless the 30 round trips took over 5 s
		t.Fatalf("%d of 30 immediate requests limited at a burst of 10", limited)
	}
	time.Sleep(1100 * time.Millisecond) // a token at 1 a second
	if r := c.call("ping", ``, nil); r["result"] == nil {
		t.Fatalf("after the refill: %v", strMap(r))
	}
}

// TestPresenceChurnIsBatched: 30 connections joining and leaving a channel with 20 watchers cost
// each watcher one push per PresenceInterval, not one per join or leave (O(n²) before).
func TestPresenceChurnIsBatched(t *testing.T) {
	e := start(t, &hub.Options{PresenceInterval: 200 * time.Millisecond, RequestRate: -1}, nil)
	var watchers []*client
	for range 20 {
		w := e.dial(t)
		w.call("subscribe", `,"channel":"lobby","presence":true`, nil)
		watchers = append(watchers, w)
	}
	time.Sleep(300 * time.Millisecond) // the watchers' own joins are pushed
	for _, w := range watchers {
		drain(w)
	}
	began := time.Now()
	var wg sync.WaitGroup
	for range 30 {
		c := e.dial(t)
		wg.Go(func() {
			for range 10 {
				c.call("subscribe", `,"channel":"lobby"`, nil)
				c.call("unsubscribe", `,"channel":"lobby"`, nil)
			}
			c.call("subscribe", `,"channel":"lobby"`, nil)
		})
	}
	wg.Wait()
	waitPresence(t, e.hub, "lobby", 50)
	time.Sleep(500 * time.Millisecond) // the last changes are pushed
	intervals := int(time.Since(began)/(200*time.Millisecond)) + 2
	for i, w := range watchers {
		pushes, joined := 0, map[string]bool{}
		for m := range drainAll(w) {
			if str(m["push"]) != "presence" {
				continue
			}
			pushes++
			var j, l []protocol.ClientInfo
			json.Unmarshal(m["join"], &j)
			json.Unmarshal(m["leave"], &l)
			for _, c := range j {
				joined[c.Conn] = true
			}
			for _, c := range l {
				delete(joined, c.Conn)
			}
		}
		if pushes > intervals {
			t.Fatalf("watcher %d got %d presence pushes over %d intervals (600 joins and leaves)", i, pushes, intervals)
		}
		if len(joined) != 30 {
			t.Fatalf("watcher %d: the pushes add up to %d joined, want 30", i, len(joined))
		}
	}
}

func drain(c *client) {
	for {
		select {
		case <-c.msgs:
		default:
			return
		}
	}
}

func drainAll(c *client) func(func(map[string]json.RawMessage) bool) {
	return func(yield func(map[string]json.RawMessage) bool) {
		for {
			select {
			case m := <-c.msgs:
				if !yield(m) {
					return
				}
			default:
				return
			}
		}
	}
}

// TestPresenceIsPaged: a presence reply holds one page; following next yields every member once.
func TestPresenceIsPaged(t *testing.T) {
	e := start(t, &hub.Options{RequestRate: -1}, nil)
	for range 25 {
		c := e.dial(t)
		c.call("subscribe", `,"channel":"crowd"`, nil)
	}
	q := e.dial(t)
	seen, after := map[string]bool{}, ""
	for pages := 0; ; pages++ {
		r := q.call("presence", fmt.Sprintf(`,"channel":"crowd","limit":10,"after":%q`, after), nil)
		var pr protocol.PresenceResult
		json.Unmarshal(r["result"], &pr)
		if pr.Total != 25 || len(pr.Clients) > 10 {
			t.Fatalf("page %d: %v", pages, strMap(r))
		}
		for _, c := range pr.Clients {
			if seen[c.Conn] {
				t.Fatalf("conn %s twice", c.Conn)
			}
			seen[c.Conn] = true
		}
		if pr.Next == "" {
			break
		}
		after = pr.Next
	}
	if len(seen) != 25 {
		t.Fatalf("%d members paged, want 25", len(seen))
	}
}

// TestDrainLosesNoAcknowledgedPublication: Drain before Shutdown: every publication whose publish
// was acknowledged reaches every subscriber before its 1001 (290 of 1,000 missed the last ones).
func TestDrainLosesNoAcknowledgedPublication(t *testing.T) {
	e := start(t, &hub.Options{RequestRate: -1}, nil)
	const subs = 100
	var readers []*client
	for range subs {
		c := e.dial(t)
		c.call("subscribe", `,"channel":"last"`, nil)
		readers = append(readers, c)
	}
	pub := e.dial(t)
	acked := make(chan uint64, 1)
	go func() { // owner: the test; ends when the publisher's connection closes
		var last uint64
		defer func() { acked <- last }()
		for i := 1; ; i++ {
			if pub.ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"id":%d,"op":"publish","channel":"last","data":%d}`, i, i))) != nil {
				return
			}
			for {
				m, ok := <-pub.msgs
				if !ok {
					return
				}
				if m["push"] != nil {
					continue
				}
				var pos protocol.Position
				if m["result"] != nil && json.Unmarshal(m["result"], &pos) == nil {
					last = pos.Offset
				}
				break
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	ctx := context.Background()
	if err := e.hub.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hub.Publish(ctx, "last", []byte("1")); !errors.Is(err, hub.ErrDraining) {
		t.Fatalf("Publish after Drain: %v", err)
	}
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	last := <-acked
	if last == 0 {
		t.Fatal("nothing was published before the shutdown")
	}
	for i, c := range readers {
		var got uint64
		for m := range c.msgs {
			if str(m["push"]) == "pub" {
				json.Unmarshal(m["offset"], &got)
			}
		}
		if got < last {
			t.Fatalf("subscriber %d got up to %d, but %d was acknowledged", i, got, last)
		}
	}
}

var _ broker.Broker = (*brokertest.Interest)(nil)
