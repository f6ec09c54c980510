package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	srv *wsgate.Server
	hub *hub.Hub
	url string
}

func start(t *testing.T, opts *hub.Options, cfg *wsgate.Config) *env {
	t.Helper()
	return startOn(t, memory.New(nil), opts, cfg)
}

func startOn(t testing.TB, b broker.Broker, opts *hub.Options, cfg *wsgate.Config) *env {
	t.Helper()
	if opts == nil {
		opts = &hub.Options{}
	}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(context.Background(), b, opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil {
		cfg = &wsgate.Config{}
	}
	cfg.Subprotocols = []string{protocol.Subprotocol}
	cfg.Logger = opts.Logger
	echo := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) { _ = c.Send(m.Type, append(m.Data, " done"...)) })
	srv, err := wsgate.NewServer(h.Handler(echo), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
		_ = h.Close(context.Background())
	})
	return &env{srv: srv, hub: h, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

// client is a wsgate.v1 client on gorilla/websocket, independent of the server's code.
type client struct {
	t    testing.TB
	ws   *websocket.Conn
	id   uint64
	msgs chan map[string]json.RawMessage
	err  error // why the connection ended; set before msgs is closed
}

func (e *env) dial(t testing.TB) *client {
	t.Helper()
	c := e.dialPaused(t)
	c.run()
	return c
}

// dialPaused connects without reading: call run to start.
func (e *env) dialPaused(t testing.TB) *client {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"other", protocol.Subprotocol}}
	ws, resp, err := d.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Subprotocol() != protocol.Subprotocol || resp.Header.Get("Sec-WebSocket-Protocol") != protocol.Subprotocol {
		t.Fatalf("negotiated %q", ws.Subprotocol())
	}
	c := &client{t: t, ws: ws, msgs: make(chan map[string]json.RawMessage, 10000)}
	t.Cleanup(func() { ws.Close() })
	return c
}

// run starts reading the connection's frames into c.msgs.
func (c *client) run() {
	t, ws := c.t, c.ws
	go func() { // owner: the client; ends when the socket does
		defer close(c.msgs)
		for {
			_, p, err := ws.ReadMessage()
			if err != nil {
				c.err = err // read by closeCode after msgs is closed
				return
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(p, &m); err != nil {
				t.Errorf("server sent invalid JSON %q", p)
				return
			}
			c.msgs <- m
		}
	}()
}

func (c *client) send(raw string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(raw)); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next frame from the server.
func (c *client) next() map[string]json.RawMessage {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatal("connection closed")
		}
		return m
	case <-time.After(5 * time.Second):
		c.t.Fatal("no frame from the server within 5s")
	}
	return nil
}

// nextOrClosed returns the next frame, or false once the connection has closed.
func (c *client) nextOrClosed() (map[string]json.RawMessage, bool) {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		return m, ok
	case <-time.After(5 * time.Second):
		c.t.Fatal("no frame from the server within 5s")
	}
	return nil, false
}

// closeCode returns the close code the server sent, once the connection has closed.
func (c *client) closeCode() int {
	var ce *websocket.CloseError
	if errors.As(c.err, &ce) {
		return ce.Code
	}
	return 0
}

// call sends a request and returns its reply, keeping pushes that come first in pushes.
func (c *client) call(op string, fields string, pushes *[]map[string]json.RawMessage) map[string]json.RawMessage {
	c.t.Helper()
	c.id++
	req := fmt.Sprintf(`{"id":%d,"op":%q%s}`, c.id, op, fields)
	c.send(req)
	for {
		m := c.next()
		if _, isPush := m["push"]; isPush {
			if pushes != nil {
				*pushes = append(*pushes, m)
			}
			continue
		}
		if string(m["id"]) != fmt.Sprint(c.id) {
			c.t.Fatalf("reply to %s has id %s", req, m["id"])
		}
		return m
	}
}

func (c *client) push(kind string) map[string]json.RawMessage {
	c.t.Helper()
	for {
		m := c.next()
		if str(m["push"]) == kind {
			return m
		}
		if str(m["push"]) != "ping" {
			c.t.Fatalf("want %s push, got %v", kind, strMap(m))
		}
	}
}

func str(r json.RawMessage) string {
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return string(r)
	}
	return s
}

func strMap(m map[string]json.RawMessage) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func errCode(t *testing.T, m map[string]json.RawMessage) protocol.Code {
	t.Helper()
	var e protocol.Error
	if err := json.Unmarshal(m["error"], &e); err != nil || e.Code == 0 || e.Message == "" {
		t.Fatalf("want an error reply, got %v", strMap(m))
	}
	return e.Code
}

func TestRawModeStillEchoes(t *testing.T) {
	e := start(t, nil, nil)
	ws, _, err := websocket.DefaultDialer.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"ping"}`))
	_, p, err := ws.ReadMessage()
	if err != nil || string(p) != `{"id":1,"op":"ping"} done` {
		t.Fatalf("raw mode: %q %v", p, err)
	}
}

func TestPublishSubscribe(t *testing.T) {
	e := start(t, nil, nil)
	a, b := e.dial(t), e.dial(t)
	r := a.call("subscribe", `,"channel":"chat"`, nil)
	var sub protocol.SubscribeResult
	if err := json.Unmarshal(r["result"], &sub); err != nil || sub.Epoch == "" || sub.Offset != 0 || sub.Recovered {
		t.Fatalf("subscribe: %v", strMap(r))
	}
	r = b.call("publish", `,"channel":"chat","data":{"text":"hi <b>"}`, nil)
	var pub protocol.PublishResult
	if err := json.Unmarshal(r["result"], &pub); err != nil || pub.Offset != 1 || pub.Epoch != sub.Epoch {
		t.Fatalf("publish: %v", strMap(r))
	}
	p := a.push("pub")
	if str(p["channel"]) != "chat" || string(p["offset"]) != "1" || str(p["epoch"]) != sub.Epoch || string(p["data"]) != `{"text":"hi <b>"}` {
		t.Fatalf("push: %v", strMap(p))
	}
	// Server-side publish reaches the same subscribers.
	if _, err := e.hub.Publish(context.Background(), "chat", []byte(`"from server"`)); err != nil {
		t.Fatal(err)
	}
	if p := a.push("pub"); string(p["data"]) != `"from server"` || string(p["offset"]) != "2" {
		t.Fatalf("server push: %v", strMap(p))
	}
	if r := a.call("unsubscribe", `,"channel":"chat"`, nil); r["error"] != nil {
		t.Fatalf("unsubscribe: %v", strMap(r))
	}
	b.call("publish", `,"channel":"chat","data":3`, nil)
	if r := a.call("ping", ``, nil); r["error"] != nil { // no pub push may arrive before this reply
		t.Fatalf("ping: %v", strMap(r))
	}
}

func TestErrorsAreRepliesNotDisconnects(t *testing.T) {
	e := start(t, &hub.Options{MaxDataSize: 16, MaxSubscriptions: 1, Authorize: func(_ context.Context, _ *wsgate.Conn, _ *hub.Identity, req *protocol.Request) error {
		if strings.HasPrefix(req.Channel, "private") {
			return errors.New("private channels need a login")
		}
		return nil
	}}, nil)
	c := e.dial(t)
	for _, tc := range []struct {
		frame string
		code  protocol.Code
	}{
		{`{"id":1,"op":"publish","channel":"c","data":`, protocol.CodeBadRequest},
		{`not json at all`, protocol.CodeBadRequest},
		{`{"op":"ping"}`, protocol.CodeBadRequest},
		{`{"id":2}`, protocol.CodeBadRequest},
		{`{"id":3,"op":"teleport"}`, protocol.CodeUnknownOp},
		{`{"id":4,"op":"subscribe","channel":"bad channel!"}`, protocol.CodeBadChannel},
		{`{"id":5,"op":"subscribe"}`, protocol.CodeBadChannel},
		{`{"id":6,"op":"publish","channel":"c","data":"this is longer than sixteen bytes"}`, protocol.CodeTooLarge},
		{`{"id":7,"op":"publish","channel":"c"}`, protocol.CodeBadRequest},
		{`{"id":8,"op":"unsubscribe","channel":"c"}`, protocol.CodeNotSubscribed},
		{`{"id":9,"op":"subscribe","channel":"private-x"}`, protocol.CodeForbidden},
		{`{"id":10,"op":"history","channel":"c","limit":5000}`, protocol.CodeBadRequest},
		{`[]`, protocol.CodeBadRequest},
	} {
		c.send(tc.frame)
		m := c.next()
		if got := errCode(t, m); got != tc.code {
			t.Errorf("%s: code %d, want %d (%v)", tc.frame, got, tc.code, strMap(m))
		}
	}
	c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"id":11,"op":"ping"}`))
	if got := errCode(t, c.next()); got != protocol.CodeNotText {
		t.Errorf("binary frame: %d", got)
	}
	c.id = 20
	c.call("subscribe", `,"channel":"one"`, nil)
	if got := errCode(t, c.call("subscribe", `,"channel":"one"`, nil)); got != protocol.CodeAlreadySubscribed {
		t.Errorf("double subscribe: %d", got)
	}
	if got := errCode(t, c.call("subscribe", `,"channel":"two"`, nil)); got != protocol.CodeLimitExceeded {
		t.Errorf("over the limit: %d", got)
	}
	if r := c.call("ping", ``, nil); r["error"] != nil {
		t.Fatalf("connection unusable after errors: %v", strMap(r))
	}
}

func TestRecoveryAfterReconnect(t *testing.T) {
	e := start(t, nil, nil)
	pubr := e.dial(t)
	a := e.dial(t)
	a.call("subscribe", `,"channel":"news"`, nil)
	pubr.call("publish", `,"channel":"news","data":1`, nil)
	p := a.push("pub")
	epoch, offset := str(p["epoch"]), string(p["offset"])
	a.ws.Close() // goes offline

	for i := 2; i <= 6; i++ {
		pubr.call("publish", fmt.Sprintf(`,"channel":"news","data":%d`, i), nil)
	}
	a2 := e.dial(t)
	r := a2.call("subscribe", fmt.Sprintf(`,"channel":"news","since":{"epoch":%q,"offset":%s}`, epoch, offset), nil)
	var sub protocol.SubscribeResult
	json.Unmarshal(r["result"], &sub)
	if !sub.Recovered || len(sub.Publications) != 5 || sub.Offset != 6 {
		t.Fatalf("recovery: %v", strMap(r))
	}
	for i, p := range sub.Publications {
		if p.Offset != uint64(i+2) || string(p.Data) != fmt.Sprint(i+2) {
			t.Fatalf("recovered publication %d: %+v", i, p)
		}
	}
	pubr.call("publish", `,"channel":"news","data":7`, nil)
	if p := a2.push("pub"); string(p["offset"]) != "7" {
		t.Fatalf("live after recovery: %v", strMap(p))
	}

	// A position from another epoch cannot be recovered, and the reply says so.
	a3 := e.dial(t)
	r = a3.call("subscribe", `,"channel":"news","since":{"epoch":"gone","offset":3}`, nil)
	sub = protocol.SubscribeResult{}
	json.Unmarshal(r["result"], &sub)
	if sub.Recovered || len(sub.Publications) != 0 || sub.Offset != 7 || sub.Epoch != epoch {
		t.Fatalf("impossible recovery: %v", strMap(r))
	}
}

// TestRecoveryUnderConcurrentPublishing subscribes with recovery while publications keep coming:
// the client must see every offset exactly once, in order.
func TestRecoveryUnderConcurrentPublishing(t *testing.T) {
	const total = 400
	// History holds them all: however far the publisher gets before the subscribe, it recovers.
	e := startOn(t, memory.New(&memory.Options{HistorySize: total}), nil, nil)
	first, _ := e.hub.Publish(context.Background(), "feed", []byte("1"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 2; i <= total; i++ {
			if _, err := e.hub.Publish(context.Background(), "feed", []byte(fmt.Sprint(i))); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	c := e.dial(t)
	r := c.call("subscribe", fmt.Sprintf(`,"channel":"feed","since":{"epoch":%q,"offset":1}`, first.Epoch), nil)
	var sub protocol.SubscribeResult
	json.Unmarshal(r["result"], &sub)
	if !sub.Recovered {
		t.Fatalf("not recovered: %v", strMap(r))
	}
	next := uint64(2)
	for _, p := range sub.Publications {
		if p.Offset != next {
			t.Fatalf("recovered offset %d, want %d", p.Offset, next)
		}
		next++
	}
	<-done
	for next <= total {
		p := c.push("pub")
		if string(p["offset"]) != fmt.Sprint(next) {
			t.Fatalf("live offset %s, want %d", p["offset"], next)
		}
		next++
	}
}

func TestPresenceAndJoinLeave(t *testing.T) {
	e := start(t, &hub.Options{UserID: func(c *wsgate.Conn) string { return c.Header().Get("X-User") }},
		&wsgate.Config{KeepHeaders: []string{"X-User"}})
	watcher := e.dial(t)
	watcher.call("subscribe", `,"channel":"room","presence":true`, nil)
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	ws, _, err := d.Dial(e.url, map[string][]string{"X-User": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"subscribe","channel":"room"}`))
	// The watcher's own join and alice's may come in one push or two.
	var info protocol.ClientInfo
	for info.User == "" {
		j := watcher.push("presence")
		var joined, left []protocol.ClientInfo
		json.Unmarshal(j["join"], &joined)
		json.Unmarshal(j["leave"], &left)
		if str(j["channel"]) != "room" || len(left) != 0 || len(joined) == 0 {
			t.Fatalf("join: %v", strMap(j))
		}
		for _, c := range joined {
			if c.User == "alice" && c.Conn != "" {
				info = c
			}
		}
	}
	r := watcher.call("presence", `,"channel":"room"`, nil)
	var pr protocol.PresenceResult
	json.Unmarshal(r["result"], &pr)
	if len(pr.Clients) != 2 || pr.Total != 2 || pr.Next != "" {
		t.Fatalf("presence: %v", strMap(r))
	}
	ws.Close()
	l := watcher.push("presence")
	var joined, left []protocol.ClientInfo
	json.Unmarshal(l["join"], &joined)
	json.Unmarshal(l["leave"], &left)
	if len(joined) != 0 || len(left) != 1 || !reflect.DeepEqual(left[0], info) {
		t.Fatalf("leave %v, join %+v", strMap(l), info)
	}
	if n := len(e.hub.Presence("room")); n != 1 {
		t.Fatalf("presence after leave: %d", n)
	}
}

// TestSlowSubscriberDoesNotDelayOthers: a subscriber that stops reading is cut by the
// slow-consumer policy, and the one that reads gets every publication, in order, exactly once:
// if a burst on a loaded machine cuts it too, it reconnects and recovers what it missed, as the
// clients do (the close code is a reconnectable one).
func TestSlowSubscriberDoesNotDelayOthers(t *testing.T) {
	const n = 20000
	e := startOn(t, memory.New(&memory.Options{HistorySize: n}), nil,
		&wsgate.Config{SendQueueMessages: 256, SendQueueBytes: 512 << 10, WriteTimeout: 300 * time.Millisecond, CloseTimeout: 300 * time.Millisecond})
	fast := e.dial(t)
	fast.call("subscribe", `,"channel":"firehose"`, nil)

	// The slow subscriber subscribes by hand and then never reads again.
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	slow, _, err := d.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"subscribe","channel":"firehose"}`))
	waitPresence(t, e.hub, "firehose", 2)

	// 20 MB in all: more than the slow one's queue and socket buffers can hold, paced so that a
	// subscriber that reads keeps up.
	payload := `"` + strings.Repeat("x", 1000) + `"`
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			if _, err := e.hub.Publish(context.Background(), "firehose", []byte(payload)); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	r := &recoverer{t: t, e: e, c: fast, channel: "firehose"}
	r.readUntil(n)
	wg.Wait()
	t.Logf("the reading subscriber reconnected %d times", r.reconnects)
	waitPresence(t, e.hub, "firehose", 1) // the slow one was closed by the slow-consumer policy
}

// recoverer reads a channel's publications as the JS client does: it checks that offsets follow
// each other, and after a disconnect it reconnects and subscribes from the last one it has.
type recoverer struct {
	t          testing.TB
	e          *env
	c          *client
	channel    string
	epoch      string
	last       uint64
	reconnects int
	gaps       int                          // offset jumps seen (and filled from history)
	fetched    uint64                       // the last offset fetched from history
	backlog    []map[string]json.RawMessage // pushes that came while a request waited for its reply
}

// next returns the next push: those held back during a request first, then from the socket.
func (r *recoverer) next() (map[string]json.RawMessage, bool) {
	if len(r.backlog) > 0 {
		m := r.backlog[0]
		r.backlog = r.backlog[1:]
		return m, true
	}
	return r.c.nextOrClosed()
}

func (r *recoverer) readUntil(n uint64) {
	t := r.t
	t.Helper()
	for r.last < n {
		m, ok := r.next()
		if !ok {
			r.reconnect()
			continue
		}
		var off uint64
		json.Unmarshal(m["offset"], &off)
		if str(m["push"]) == "gap" && str(m["channel"]) == r.channel {
			if off > r.last {
				r.gaps++
				r.fill(off)
			}
			continue
		}
		if str(m["push"]) != "pub" || str(m["channel"]) != r.channel {
			continue
		}
		if r.epoch == "" {
			r.epoch = str(m["epoch"])
		}
		switch {
		case off == r.last+1:
			r.last = off
		case off > r.last+1:
			r.gaps++
			r.fill(off - 1)
			r.last = off
		case off <= r.fetched:
			// Queued before a history fetch that already gave it: the client skips it.
		default:
			t.Fatalf("offset %d after %d: a duplicate or out of order", off, r.last)
		}
	}
}

// fill gets the publications after r.last up to to from history, page by page.
func (r *recoverer) fill(to uint64) {
	t := r.t
	for r.last < to {
		// Live publications that come meanwhile are left out: they show as a jump, filled again.
		rep := r.c.call("history", fmt.Sprintf(`,"channel":%q,"since":{"epoch":%q,"offset":%d},"limit":1000`, r.channel, r.epoch, r.last), &r.backlog)
		var h protocol.HistoryResult
		if err := json.Unmarshal(rep["result"], &h); err != nil || !h.Complete {
			t.Fatalf("history to fill a gap after %d: %v", r.last, strMap(rep))
		}
		r.apply(h.Publications)
		r.fetched = max(r.fetched, r.last)
		if !h.More && r.last < to {
			t.Fatalf("history ended at %d, short of %d", r.last, to)
		}
	}
}

func (r *recoverer) reconnect() {
	t := r.t
	if code := r.c.closeCode(); code != int(wsgate.CloseTryAgainLater) {
		t.Fatalf("the reading subscriber was closed with %d, not a reconnectable code", code)
	}
	r.reconnects++
	if r.reconnects > 50 {
		t.Fatal("more than 50 reconnects")
	}
	r.c = r.e.dial(t)
	rep := r.c.call("subscribe", fmt.Sprintf(`,"channel":%q,"since":{"epoch":%q,"offset":%d}`, r.channel, r.epoch, r.last), nil)
	var sub protocol.SubscribeResult
	if err := json.Unmarshal(rep["result"], &sub); err != nil || !sub.Recovered {
		t.Fatalf("recovery from %d: %v", r.last, strMap(rep))
	}
	r.apply(sub.Publications)
	if sub.More {
		r.fill(sub.Offset)
	}
}

// apply takes recovered publications, which must follow r.last without a hole.
func (r *recoverer) apply(pubs []protocol.Publication) {
	for _, p := range pubs {
		if p.Offset != r.last+1 {
			r.t.Fatalf("recovered offset %d after %d", p.Offset, r.last)
		}
		r.last = p.Offset
	}
}

func waitPresence(t *testing.T, h *hub.Hub, ch string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.Presence(ch)) != n {
		if time.Now().After(deadline) {
			t.Fatalf("presence of %s: %d, want %d", ch, len(h.Presence(ch)), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestServerPingPush(t *testing.T) {
	e := start(t, &hub.Options{PingInterval: 50 * time.Millisecond}, nil)
	c := e.dial(t)
	if m := c.next(); str(m["push"]) != "ping" {
		t.Fatalf("want ping push, got %v", strMap(m))
	}
}

func TestServerSideSubscribe(t *testing.T) {
	e := start(t, nil, nil)
	c := e.dial(t)
	c.call("ping", ``, nil) // the connection is open and registered
	var conn *wsgate.Conn
	e.srv.Range(func(x *wsgate.Conn) bool { conn = x; return false })
	if err := e.hub.Subscribe(context.Background(), conn, "alerts"); err != nil {
		t.Fatal(err)
	}
	if p := c.push("subscribe"); str(p["channel"]) != "alerts" || str(p["epoch"]) == "" || string(p["offset"]) != "0" {
		t.Fatalf("subscribe push: %v", strMap(p))
	}
	e.hub.Publish(context.Background(), "alerts", []byte(`"fire"`))
	if p := c.push("pub"); string(p["data"]) != `"fire"` {
		t.Fatalf("server-side subscription: %v", strMap(p))
	}
	if _, err := e.hub.Publish(context.Background(), "alerts", []byte(`{not json`)); err == nil {
		t.Fatal("invalid JSON published")
	}
}
