package hub_test

// The request hooks (Authorize, Publish, RPC, Channel) and the server-side methods, through
// real sockets from an independent client.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// TestAuthorizeSeesIdentityAndRequest: Authorize gets the identity and the whole request, for
// subscribe, publish, presence, history and rpc only; its errors map as documented.
func TestAuthorizeSeesIdentityAndRequest(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	e := start(t, &hub.Options{Connect: tokens,
		RPC: func(context.Context, *wsgate.Conn, *hub.Identity, string, json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`1`), nil
		},
		Authorize: func(_ context.Context, _ *wsgate.Conn, id *hub.Identity, req *protocol.Request) error {
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%s %s %s%s", id.User, req.Op, req.Channel, req.Method))
			mu.Unlock()
			switch {
			case req.Channel == "secret" && req.Token != "pass":
				return protocol.Errorf(protocol.CodeUnauthorized, "channel token required")
			case req.Channel == "nope":
				return errors.New("not yours")
			case req.Channel == "ban":
				return &hub.Disconnect{Code: protocol.CloseDisconnected, Reason: "banned"}
			}
			return nil
		}}, nil)
	c := e.dial(t)
	c.call("connect", `,"token":"user:erin"`, nil)
	for _, req := range []struct{ op, fields string }{
		{"subscribe", `,"channel":"a"`}, {"publish", `,"channel":"a","data":1`}, {"presence", `,"channel":"a"`},
		{"history", `,"channel":"a"`}, {"rpc", `,"method":"m.x"`}, {"unsubscribe", `,"channel":"a"`}, {"ping", ``},
		{"subscribe", `,"channel":"secret","token":"pass"`},
	} {
		if r := c.call(req.op, req.fields, nil); r["result"] == nil {
			t.Fatalf("%s: %v", req.op, strMap(r))
		}
	}
	if got := fmt.Sprint(seen); got != "[erin subscribe a erin publish a erin presence a erin history a erin rpc m.x erin subscribe secret]" {
		t.Fatalf("Authorize saw %s", got)
	}
	if code := errCode(t, c.call("subscribe", `,"channel":"nope"`, nil)); code != protocol.CodeForbidden {
		t.Fatalf("plain error: %d", code)
	}
	r := c.call("subscribe", `,"channel":"nope"`, nil)
	if !strings.Contains(string(r["error"]), "not yours") {
		t.Fatalf("the error's text: %v", strMap(r))
	}
	if code := errCode(t, c.call("publish", `,"channel":"secret","data":1`, nil)); code != protocol.CodeUnauthorized {
		t.Fatalf("protocol error: %d", code)
	}
	if code := errCode(t, c.call("history", `,"channel":"ban"`, nil)); code != protocol.CodeForbidden {
		t.Fatalf("disconnect: %d", code)
	}
	if code := c.closed(2 * time.Second); code != protocol.CloseDisconnected {
		t.Fatalf("closed with %d", code)
	}
}

// TestPublishHook: the hook may replace the data (checked again against MaxDataSize and JSON)
// or refuse.
func TestPublishHook(t *testing.T) {
	e := start(t, &hub.Options{MaxDataSize: 64,
		Publish: func(_ context.Context, _ *wsgate.Conn, _ *hub.Identity, ch string, data json.RawMessage) (json.RawMessage, error) {
			switch string(data) {
			case `"grow"`:
				return json.RawMessage(`"` + strings.Repeat("g", 100) + `"`), nil
			case `"bad"`:
				return json.RawMessage(`{not json`), nil
			case `"no"`:
				return nil, protocol.Errorf(protocol.CodeForbidden, "moderated")
			}
			return json.RawMessage(`{"channel":"` + ch + `","text":` + string(data) + `}`), nil
		}}, nil)
	c := e.dial(t)
	c.call("subscribe", `,"channel":"room"`, nil)
	var pushes []map[string]json.RawMessage
	if r := c.call("publish", `,"channel":"room","data":"hi"`, &pushes); r["result"] == nil {
		t.Fatalf("publish: %v", strMap(r))
	}
	if len(pushes) == 0 {
		pushes = append(pushes, c.push("pub"))
	}
	if p := pushes[0]; string(p["data"]) != `{"channel":"room","text":"hi"}` {
		t.Fatalf("replaced data: %v", strMap(p))
	}
	for data, want := range map[string]protocol.Code{`"grow"`: protocol.CodeTooLarge, `"bad"`: protocol.CodeInternal, `"no"`: protocol.CodeForbidden} {
		if code := errCode(t, c.call("publish", `,"channel":"room","data":`+data, nil)); code != want {
			t.Fatalf("%s: %d, want %d", data, code, want)
		}
	}
	if h, _ := e.hub.History(context.Background(), "room", nil, 10); h.Offset != 1 {
		t.Fatalf("refused publications were published: top %d", h.Offset)
	}
}

func TestRPC(t *testing.T) {
	e := start(t, &hub.Options{MaxReplyBytes: 1024,
		RPC: func(_ context.Context, _ *wsgate.Conn, _ *hub.Identity, method string, data json.RawMessage) (json.RawMessage, error) {
			switch method {
			case "echo":
				return data, nil
			case "big":
				return json.RawMessage(`"` + strings.Repeat("b", 2000) + `"`), nil
			case "bad":
				return json.RawMessage(`nope`), nil
			case "nil":
				return nil, nil
			}
			return nil, protocol.Errorf(protocol.CodeNotAvailable, "no method %q", method)
		}}, nil)
	c := e.dial(t)
	if r := c.call("rpc", `,"method":"echo","data":{"a":[1,2]}`, nil); string(r["result"]) != `{"a":[1,2]}` {
		t.Fatalf("echo: %v", strMap(r))
	}
	if r := c.call("rpc", `,"method":"nil"`, nil); string(r["result"]) != `null` {
		t.Fatalf("nil: %v", strMap(r))
	}
	for method, want := range map[string]protocol.Code{"big": protocol.CodeTooLarge, "bad": protocol.CodeInternal, "other": protocol.CodeNotAvailable} {
		if code := errCode(t, c.call("rpc", `,"method":"`+method+`"`, nil)); code != want {
			t.Fatalf("%s: %d, want %d", method, code, want)
		}
	}
	if code := errCode(t, c.call("rpc", `,"method":"bad method"`, nil)); code != protocol.CodeBadRequest {
		t.Fatalf("bad method name: %d", code)
	}
}

func TestChannelOptions(t *testing.T) {
	e := start(t, &hub.Options{Channel: func(ch string) hub.ChannelOptions {
		ns, _, _ := strings.Cut(ch, ":")
		return map[string]hub.ChannelOptions{
			"quiet": {NoPresence: true}, "big": {NoJoinLeave: true}, "live": {NoHistory: true}, "now": {NoRecovery: true},
		}[ns]
	}}, nil)
	e.hub.Publish(context.Background(), "now:x", []byte(`1`))
	e.hub.Publish(context.Background(), "now:x", []byte(`2`))
	c := e.dial(t)
	for _, tc := range []struct{ op, fields string }{
		{"presence", `,"channel":"quiet:x"`},
		{"subscribe", `,"channel":"quiet:x","presence":true`},
		{"subscribe", `,"channel":"big:x","presence":true`},
		{"history", `,"channel":"live:x"`},
	} {
		if code := errCode(t, c.call(tc.op, tc.fields, nil)); code != protocol.CodeNotAvailable {
			t.Fatalf("%s%s: %d", tc.op, tc.fields, code)
		}
	}
	for _, tc := range []struct{ op, fields string }{
		{"subscribe", `,"channel":"quiet:x"`}, {"presence", `,"channel":"big:x"`}, {"subscribe", `,"channel":"live:x","presence":true`},
		{"history", `,"channel":"now:x"`},
	} {
		if r := c.call(tc.op, tc.fields, nil); r["result"] == nil {
			t.Fatalf("%s%s: %v", tc.op, tc.fields, strMap(r))
		}
	}
	r := c.call("subscribe", `,"channel":"now:x","since":{"epoch":"","offset":0}`, nil)
	var res protocol.SubscribeResult
	if err := json.Unmarshal(r["result"], &res); err != nil || res.Recovered || len(res.Publications) != 0 || res.Offset != 2 {
		t.Fatalf("subscribe with since on a channel without recovery: %v", strMap(r))
	}
	r = c.call("subscribe", `,"channel":"other","since":{"epoch":"","offset":0}`, nil)
	if json.Unmarshal(r["result"], &res); !res.Recovered {
		t.Fatalf("recovery elsewhere: %v", strMap(r))
	}
}

// TestIdentityInJoinPushes: a join push carries the identity's user and info.
func TestIdentityInJoinPushes(t *testing.T) {
	e := start(t, &hub.Options{Connect: tokens, PresenceInterval: 20 * time.Millisecond}, nil)
	w := e.dial(t)
	w.call("connect", `,"token":"user:watch"`, nil)
	w.call("subscribe", `,"channel":"room","presence":true`, nil)
	w.push("presence") // its own join
	c := e.dial(t)
	c.call("connect", `,"token":"user:frank"`, nil)
	c.call("subscribe", `,"channel":"room"`, nil)
	p := w.push("presence")
	var joined []protocol.ClientInfo
	if json.Unmarshal(p["join"], &joined); len(joined) != 1 || joined[0].User != "frank" || string(joined[0].Info) != `{"name":"FRANK"}` {
		t.Fatalf("join push %v", strMap(p))
	}
	if clients, users := e.hub.PresenceStats("room"); clients != 2 || users != 2 {
		t.Fatalf("stats %d clients, %d users", clients, users)
	}
}

// TestServerSideMethods: Unsubscribe with its push, Channels, PresenceStats, RemoveHistory,
// Cluster, and ErrNotConnected.
func TestServerSideMethods(t *testing.T) {
	e := start(t, &hub.Options{UserID: func(c *wsgate.Conn) string { return "u" + fmt.Sprint(c.ID()%2) }}, nil)
	var cs []*client
	for range 3 {
		c := e.dial(t)
		c.call("subscribe", `,"channel":"room"`, nil)
		cs = append(cs, c)
	}
	cs[0].call("subscribe", `,"channel":"side"`, nil)
	if got := fmt.Sprint(e.hub.Channels()); got != "[{room 3} {side 1}]" {
		t.Fatalf("Channels %s", got)
	}
	if clients, users := e.hub.PresenceStats("room"); clients != 3 || users != 2 {
		t.Fatalf("stats %d clients, %d users", clients, users)
	}
	conn := e.connOf(t, cs[0])
	if err := e.hub.Unsubscribe(conn, "side"); err != nil {
		t.Fatal(err)
	}
	if p := cs[0].push("unsubscribe"); str(p["channel"]) != "side" {
		t.Fatalf("unsubscribe push %v", strMap(p))
	}
	var perr *protocol.Error
	if err := e.hub.Unsubscribe(conn, "side"); !errors.As(err, &perr) || perr.Code != protocol.CodeNotSubscribed {
		t.Fatalf("second unsubscribe: %v", err)
	}
	e.hub.Publish(context.Background(), "side", []byte(`1`))
	if r := cs[0].call("ping", ``, nil); r["result"] == nil { // and no pub push before it
		t.Fatalf("after unsubscribe: %v", strMap(r))
	}
	if got := fmt.Sprint(e.hub.Channels()); got != "[{room 3}]" {
		t.Fatalf("Channels after unsubscribe %s", got)
	}
	if err := e.hub.RemoveHistory(context.Background(), "room"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("RemoveHistory without the capability: %v", err)
	}
	if e.hub.Cluster() != nil {
		t.Fatal("a cluster on one node")
	}
	raw := e.dialRaw(t)
	if err := e.hub.Unsubscribe(raw, "room"); !errors.Is(err, hub.ErrNotConnected) {
		t.Fatalf("Unsubscribe of a raw connection: %v", err)
	}
}

// dialRaw opens a connection without the subprotocol and returns the server's side of it.
func (e *env) dialRaw(t *testing.T) *wsgate.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return e.connOf(t, &client{t: t, ws: ws})
}

// remover is a broker with the optional capabilities, counting their calls.
type remover struct {
	*memory.Broker
	removed atomic.Int64
	once    atomic.Int64
}

func (r *remover) RemoveHistory(context.Context, string) error { r.removed.Add(1); return nil }
func (r *remover) PublishOnce(ctx context.Context, ch string, data []byte, _ string) (broker.Position, error) {
	r.once.Add(1)
	return r.Publish(ctx, ch, data)
}

var (
	_ broker.HistoryRemover = (*remover)(nil)
	_ broker.Deduplicator   = (*remover)(nil)
)

func TestBrokerCapabilitiesAreUsed(t *testing.T) {
	r := &remover{Broker: memory.New(nil)}
	e := startOn(t, r, nil, nil)
	if err := e.hub.RemoveHistory(context.Background(), "a"); err != nil || r.removed.Load() != 1 {
		t.Fatalf("RemoveHistory: %v, %d calls", err, r.removed.Load())
	}
	if _, err := e.hub.PublishOnce(context.Background(), "a", []byte(`1`), "k"); err != nil || r.once.Load() != 1 {
		t.Fatalf("PublishOnce: %v, %d calls", err, r.once.Load())
	}
}

// TestPublishOnceWindow: without a Deduplicator, the hub's own window publishes a key once, even
// when 20 callers race with it; other keys and channels publish.
func TestPublishOnceWindow(t *testing.T) {
	e := start(t, nil, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	pos := make([]broker.Position, 20)
	for i := range pos {
		wg.Go(func() {
			var err error
			if pos[i], err = e.hub.PublishOnce(ctx, "orders", []byte(`{"n":1}`), "order-1"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, p := range pos {
		if p != pos[0] {
			t.Fatalf("positions %v", pos)
		}
	}
	p2, _ := e.hub.PublishOnce(ctx, "orders", []byte(`{"n":2}`), "order-2")
	p3, _ := e.hub.PublishOnce(ctx, "other", []byte(`{"n":1}`), "order-1")
	if h, _ := e.hub.History(ctx, "orders", nil, 10); h.Offset != 2 || p2.Offset != 2 || p3.Offset != 1 {
		t.Fatalf("orders top %d, order-2 at %d, other at %d", h.Offset, p2.Offset, p3.Offset)
	}
	for _, key := range []string{"", strings.Repeat("k", hub.MaxPublishKeyLen+1)} {
		if _, err := e.hub.PublishOnce(ctx, "orders", []byte(`1`), key); err == nil {
			t.Fatalf("key of %d bytes accepted", len(key))
		}
	}
	if _, err := e.hub.PublishOnce(ctx, "orders", []byte(`{bad`), "k3"); err == nil {
		t.Fatal("not JSON accepted")
	}
	// A failed publication is not remembered: the retry publishes.
	if _, err := e.hub.PublishOnce(ctx, "bad channel", []byte(`1`), "k4"); err == nil {
		t.Fatal("bad channel accepted")
	}
}
