package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// TestPublishReachesSubscribersAndHistory: a publication made through the API reaches a
// wsgate.v1 subscriber of the real hub, and is in the channel's history, pageable by since.
func TestPublishReachesSubscribersAndHistory(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial("carol")
	c.send(`{"id":1,"op":"subscribe","channel":"news"}`)
	c.next(`"id":1`)

	var first broker.Position
	for i := 1; i <= 3; i++ {
		a := e.post("/api/publish", fmt.Sprintf(`{"channel":"news","data":{"n":%d}}`, i))
		if a.status != 200 {
			t.Fatalf("publish %d: %d %s", i, a.status, a.body)
		}
		var pos broker.Position
		a.decode(t, &pos)
		if pos.Offset != uint64(i) || pos.Epoch == "" {
			t.Fatalf("publish %d: position %+v", i, pos)
		}
		if i == 1 {
			first = pos
		}
		c.next(fmt.Sprintf(`{"n":%d}`, i))
	}

	var h broker.HistoryResult
	a := e.post("/api/history", `{"channel":"news"}`)
	a.decode(t, &h)
	if a.status != 200 || len(h.Publications) != 3 || h.Offset != 3 || !h.Complete || string(h.Publications[2].Data) != `{"n":3}` {
		t.Fatalf("history: %d %s", a.status, a.body)
	}
	a = e.post("/api/history", fmt.Sprintf(`{"channel":"news","since":{"epoch":%q,"offset":1},"limit":1}`, first.Epoch))
	h = broker.HistoryResult{}
	a.decode(t, &h)
	if len(h.Publications) != 1 || h.Publications[0].Offset != 2 || !h.More {
		t.Fatalf("history since 1, limit 1: %s", a.body)
	}
	a = e.post("/api/history", `{"channel":"never"}`)
	if a.status != 200 || !strings.Contains(string(a.body), `"publications":[]`) {
		t.Fatalf("history of a channel without one: %d %s", a.status, a.body)
	}
}

// TestHistoryAnswerBoundedInBytes: a history answer stops near MaxResponseBytes and says more.
func TestHistoryAnswerBoundedInBytes(t *testing.T) {
	e := newEnv(t, &api.Options{Keys: []string{testKey}, MaxResponseBytes: 3000})
	big := `"` + strings.Repeat("x", 1000) + `"`
	for range 10 {
		if a := e.post("/api/publish", `{"channel":"big","data":`+big+`}`); a.status != 200 {
			t.Fatal(a.status, string(a.body))
		}
	}
	var h broker.HistoryResult
	a := e.post("/api/history", `{"channel":"big","since":{"epoch":"","offset":0}}`)
	a.decode(t, &h)
	if len(h.Publications) != 2 || !h.More || len(a.body) > 3000 {
		t.Fatalf("history: %d publications, more %v, %d bytes", len(h.Publications), h.More, len(a.body))
	}
}

// TestServerSideSubscribeAndDisconnect: subscribe reaches every connection of the user and only
// theirs; disconnect closes them all with 4003 by default, or the code given.
func TestServerSideSubscribeAndDisconnect(t *testing.T) {
	e := newEnv(t, nil)
	a1, a2, b := e.dial("alice"), e.dial("alice"), e.dial("bob")
	for _, c := range []*wsClient{a1, a2, b} { // each connection is registered once it answers
		c.send(`{"id":9,"op":"ping"}`)
		c.next(`"id":9`)
	}
	var n api.ConnectionsResult
	a := e.post("/api/subscribe", `{"user":"alice","channel":"room"}`)
	a.decode(t, &n)
	if a.status != 200 || n.Connections != 2 {
		t.Fatalf("subscribe: %d %s", a.status, a.body)
	}
	if a := e.post("/api/subscribe", `{"user":"nobody","channel":"room"}`); a.status != 200 || string(a.body) != "{\"connections\":0}\n" {
		t.Fatalf("subscribe of a user not connected: %d %s", a.status, a.body)
	}
	e.post("/api/publish", `{"channel":"room","data":"for alice"}`)
	a1.next(`"for alice"`)
	a2.next(`"for alice"`)
	b.send(`{"id":2,"op":"ping"}`)
	if got := b.next(`"id":2`); strings.Contains(got, "for alice") {
		t.Fatal("bob got alice's channel")
	}

	if a := e.post("/api/disconnect", `{"user":"alice","code":1000}`); a.status != 400 || !strings.Contains(a.errorOf(t).Message, "4000-4999") {
		t.Fatalf("disconnect with 1000: %d %s", a.status, a.body)
	}
	a = e.post("/api/disconnect", `{"user":"alice","reason":"banned"}`)
	n = api.ConnectionsResult{}
	a.decode(t, &n)
	if a.status != 200 || n.Connections != 2 {
		t.Fatalf("disconnect: %d %s", a.status, a.body)
	}
	for _, c := range []*wsClient{a1, a2} {
		_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		var err error
		for err == nil {
			_, _, err = c.ws.ReadMessage()
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != protocol.CloseDisconnected || ce.Text != "banned" {
			t.Fatalf("alice's connection ended with %v, want close 4003 banned", err)
		}
	}
	b.send(`{"id":3,"op":"ping"}`)
	b.next(`"id":3`)
}

// TestPresenceAndStats: presence pages through the channel's subscribers with their users;
// the stats count connections and distinct users.
func TestPresenceAndStats(t *testing.T) {
	e := newEnv(t, nil)
	for i, u := range []string{"alice", "alice", "bob"} {
		c := e.dial(u)
		c.send(fmt.Sprintf(`{"id":%d,"op":"subscribe","channel":"chat"}`, i+1))
		c.next(fmt.Sprintf(`"id":%d`, i+1))
	}
	var p protocol.PresenceResult
	a := e.post("/api/presence", `{"channel":"chat","limit":2}`)
	a.decode(t, &p)
	if a.status != 200 || p.Total != 3 || len(p.Clients) != 2 || p.Next == "" || p.Clients[0].User == "" {
		t.Fatalf("presence page 1: %d %s", a.status, a.body)
	}
	if p.Clients[0].User == "alice" && string(p.Clients[0].Info) != `{"name":"Alice"}` {
		t.Fatalf("presence without the identity's info: %s", a.body)
	}
	seen := []string{p.Clients[0].User, p.Clients[1].User}
	a = e.post("/api/presence", fmt.Sprintf(`{"channel":"chat","limit":2,"after":%q}`, p.Next))
	p = protocol.PresenceResult{}
	a.decode(t, &p)
	if len(p.Clients) != 1 || p.Next != "" {
		t.Fatalf("presence page 2: %s", a.body)
	}
	seen = append(seen, p.Clients[0].User)
	if strings.Count(strings.Join(seen, ","), "alice") != 2 {
		t.Fatalf("presence users %v", seen)
	}
	var s api.PresenceStats
	e.post("/api/presence_stats", `{"channel":"chat"}`).decode(t, &s)
	if s != (api.PresenceStats{Clients: 3, Users: 2}) {
		t.Fatalf("stats %+v", s)
	}
	if a := e.post("/api/presence", `{"channel":"chat","limit":1001}`); a.status != 400 || !strings.Contains(a.errorOf(t).Message, "limit") {
		t.Fatalf("limit 1001: %d %s", a.status, a.body)
	}
}

// TestBroadcast: one data to many channels, a result per channel in order; a list that is
// empty, too long, or names a channel twice or a bad one is refused whole, before publishing.
func TestBroadcast(t *testing.T) {
	e := newEnv(t, &api.Options{Keys: []string{testKey}, MaxBroadcast: 3})
	var r api.BroadcastResult
	a := e.post("/api/broadcast", `{"channels":["a","b","c"],"data":{"x":1}}`)
	a.decode(t, &r)
	if a.status != 200 || len(r.Results) != 3 || r.Results[2].Channel != "c" || r.Results[2].Offset != 1 || r.Results[0].Error != nil {
		t.Fatalf("broadcast: %d %s", a.status, a.body)
	}
	for body, want := range map[string]string{
		`{"channels":[],"data":1}`:                "channels required",
		`{"channels":["a","b","c","d"],"data":1}`: "4 channels, limit 3",
		`{"channels":["a","a"],"data":1}`:         `channels[1]: "a" named twice`,
		`{"channels":["a","b c"],"data":1}`:       "channels[1]",
		`{"channels":["a"]}`:                      "data required",
		`{"channels":"a","data":1}`:               `field "channels"`,
	} {
		a := e.post("/api/broadcast", body)
		if a.status != 400 || !strings.Contains(a.errorOf(t).Message, want) {
			t.Errorf("%s: %d %s, want 400 saying %q", body, a.status, a.body, want)
		}
	}
	var h broker.HistoryResult
	e.post("/api/history", `{"channel":"a"}`).decode(t, &h)
	if h.Offset != 1 {
		t.Fatalf("refused broadcasts published on a: %+v", h)
	}
}

// TestInfo: info needs no body, and counts the connections.
func TestInfo(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial("alice")
	c.send(`{"id":1,"op":"ping"}`)
	c.next(`"id":1`)
	a := e.do(http.MethodPost, "/api/info", "", map[string]string{"Content-Type": ""})
	var info api.NodeInfo
	a.decode(t, &info)
	if a.status != 200 || info.Connections != 1 || info.Name == "" {
		t.Fatalf("info: %d %s", a.status, a.body)
	}
}

// stubNode makes a hubNode's Info fail as told, for the mapping of errors to answers.
type stubNode struct {
	*hubNode
	info func(ctx context.Context) (api.NodeInfo, error)
}

func (s stubNode) Info(ctx context.Context) (api.NodeInfo, error) { return s.info(ctx) }

func stubEnv(t *testing.T, o api.Options, info func(ctx context.Context) (api.NodeInfo, error)) *env {
	e := newEnv(t, nil)
	o.Keys, o.Logger = []string{testKey}, quiet
	h, err := api.New(stubNode{e.node, info}, o)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, h)
	e.api = srv
	return e
}

// TestNodeErrors: a *protocol.Error answers its status and code; a deadline 503 with
// Retry-After; any other error 500 without its text, which may name internals.
func TestNodeErrors(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   protocol.Code
	}{
		{protocol.Errorf(protocol.CodeNotAvailable, "no such thing"), 404, protocol.CodeNotAvailable},
		{protocol.Errorf(protocol.CodeFull, "broker full"), 503, protocol.CodeFull},
		{fmt.Errorf("wrapped: %w", protocol.Errorf(protocol.CodeForbidden, "no")), 403, protocol.CodeForbidden},
		{errors.New("dial tcp db:5432: password=hunter2 refused"), 500, protocol.CodeInternal},
	} {
		e := stubEnv(t, api.Options{}, func(context.Context) (api.NodeInfo, error) { return api.NodeInfo{}, tc.err })
		a := e.post("/api/info", `{}`)
		pe := a.errorOf(t)
		if a.status != tc.status || pe.Code != tc.code || strings.Contains(string(a.body), "hunter2") {
			t.Errorf("%v: %d %s", tc.err, a.status, a.body)
		}
	}
	e := stubEnv(t, api.Options{Timeout: 20 * time.Millisecond}, func(ctx context.Context) (api.NodeInfo, error) {
		<-ctx.Done()
		return api.NodeInfo{}, ctx.Err()
	})
	a := e.post("/api/info", `{}`)
	if a.status != 503 || a.header.Get("Retry-After") == "" || a.errorOf(t).Code != protocol.CodeUnavailable {
		t.Fatalf("timeout: %d %s", a.status, a.body)
	}
}

// TestInFlightBound: beyond MaxInFlight requests at once, 429 with Retry-After, at once.
func TestInFlightBound(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	e := stubEnv(t, api.Options{MaxInFlight: 1}, func(ctx context.Context) (api.NodeInfo, error) {
		entered <- struct{}{}
		<-release
		return api.NodeInfo{Name: "n"}, nil
	})
	done := make(chan answer)
	go func() { done <- e.post("/api/info", `{}`) }()
	<-entered
	a := e.post("/api/info", `{}`)
	if a.status != 429 || a.header.Get("Retry-After") != "1" {
		t.Fatalf("second request: %d %s", a.status, a.body)
	}
	close(release)
	if a := <-done; a.status != 200 {
		t.Fatalf("first request: %d %s", a.status, a.body)
	}
}

// keyNode records the idempotency keys that reach the Node.
type keyNode struct {
	*hubNode
	keys chan string
}

func (k keyNode) Publish(ctx context.Context, ch string, data json.RawMessage, key string) (broker.Position, error) {
	k.keys <- key
	return k.hubNode.Publish(ctx, ch, data, key)
}

func (k keyNode) Broadcast(ctx context.Context, chs []string, data json.RawMessage, key string) ([]api.ChannelResult, error) {
	k.keys <- key
	return k.hubNode.Broadcast(ctx, chs, data, key)
}

// TestIdempotencyKeyReachesNode: the key of the body or of the Idempotency-Key header (or of
// both, when they agree) is what the Node is given.
func TestIdempotencyKeyReachesNode(t *testing.T) {
	e := newEnv(t, nil)
	keys := make(chan string, 1)
	h, err := api.New(keyNode{e.node, keys}, api.Options{Keys: []string{testKey}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e.api = newServer(t, h)
	for _, tc := range []struct {
		path, body, header, want string
	}{
		{"/api/publish", `{"channel":"a","data":1}`, "", ""},
		{"/api/publish", `{"channel":"a","data":1,"idempotency_key":"body-key"}`, "", "body-key"},
		{"/api/publish", `{"channel":"a","data":1}`, "header-key", "header-key"},
		{"/api/publish", `{"channel":"a","data":1,"idempotency_key":"same"}`, "same", "same"},
		{"/api/broadcast", `{"channels":["a"],"data":1}`, "b-key", "b-key"},
	} {
		a := e.do(http.MethodPost, tc.path, tc.body, map[string]string{"Idempotency-Key": tc.header})
		if a.status != 200 {
			t.Fatalf("%s %s: %d %s", tc.path, tc.body, a.status, a.body)
		}
		if got := <-keys; got != tc.want {
			t.Errorf("%s %s + %q: the Node got %q", tc.path, tc.body, tc.header, got)
		}
	}
}

// TestUnsubscribeAndChannels: server-side subscribe and unsubscribe reach the user's
// connections with their pushes; channels lists what has subscribers, by prefix and in pages.
func TestUnsubscribeAndChannels(t *testing.T) {
	e := newEnv(t, nil)
	a1, a2 := e.dial("alice"), e.dial("alice")
	for _, ch := range []string{"chat:a", "chat:b", "chat:c", "news"} {
		if a := e.post("/api/subscribe", `{"user":"alice","channel":"`+ch+`"}`); string(a.body) != "{\"connections\":2}\n" {
			t.Fatalf("subscribe %s: %d %s", ch, a.status, a.body)
		}
		a1.next(`"push":"subscribe","channel":"` + ch + `"`)
	}
	var page api.ChannelsResult
	e.post("/api/channels", `{"prefix":"chat:","limit":2}`).decode(t, &page)
	if len(page.Channels) != 2 || page.Channels[0] != (api.ChannelInfo{Name: "chat:a", Subscribers: 2}) || page.Next != "chat:b" {
		t.Fatalf("channels page 1: %+v", page)
	}
	page = api.ChannelsResult{}
	e.post("/api/channels", `{"prefix":"chat:","limit":2,"after":"chat:b"}`).decode(t, &page)
	if len(page.Channels) != 1 || page.Channels[0].Name != "chat:c" || page.Next != "" {
		t.Fatalf("channels page 2: %+v", page)
	}

	if a := e.post("/api/unsubscribe", `{"user":"alice","channel":"news"}`); string(a.body) != "{\"connections\":2}\n" {
		t.Fatalf("unsubscribe: %d %s", a.status, a.body)
	}
	a2.next(`"push":"unsubscribe","channel":"news"`)
	if a := e.post("/api/unsubscribe", `{"user":"alice","channel":"news"}`); string(a.body) != "{\"connections\":0}\n" {
		t.Fatalf("unsubscribe again: %d %s", a.status, a.body)
	}
	page = api.ChannelsResult{}
	e.post("/api/channels", `{}`).decode(t, &page)
	if len(page.Channels) != 3 {
		t.Fatalf("channels after the unsubscribe: %+v", page)
	}
}

// TestBoundsAgreeWithTheHub: what the API refuses up front, the hub would refuse too, and
// nothing the hub takes is refused by the API.
func TestBoundsAgreeWithTheHub(t *testing.T) {
	if api.MaxKeyLen != hub.MaxPublishKeyLen || api.MaxUserLen != hub.MaxUserLen || api.DefaultMaxDataSize != hub.DefaultMaxDataSize {
		t.Fatalf("api %d %d %d, hub %d %d %d", api.MaxKeyLen, api.MaxUserLen, api.DefaultMaxDataSize, hub.MaxPublishKeyLen, hub.MaxUserLen, hub.DefaultMaxDataSize)
	}
}

// TestIdempotentPublish: the same key on the same channel publishes once and answers the first
// position; another key, or another channel, publishes.
func TestIdempotentPublish(t *testing.T) {
	e := newEnv(t, nil)
	var p1, p2, p3 broker.Position
	e.post("/api/publish", `{"channel":"orders","data":1,"idempotency_key":"order-1"}`).decode(t, &p1)
	e.do(http.MethodPost, "/api/publish", `{"channel":"orders","data":1}`, map[string]string{"Idempotency-Key": "order-1"}).decode(t, &p2)
	e.post("/api/publish", `{"channel":"orders","data":2,"idempotency_key":"order-2"}`).decode(t, &p3)
	if p1.Offset != 1 || p2 != p1 || p3.Offset != 2 {
		t.Fatalf("positions %+v %+v %+v", p1, p2, p3)
	}
	var r api.BroadcastResult
	e.post("/api/broadcast", `{"channels":["orders","other"],"data":1,"idempotency_key":"order-1"}`).decode(t, &r)
	if r.Results[0].Offset != 1 || r.Results[1].Offset != 1 {
		t.Fatalf("broadcast with a key used on one channel: %+v", r)
	}
	var h broker.HistoryResult
	e.post("/api/history", `{"channel":"orders"}`).decode(t, &h)
	if len(h.Publications) != 2 {
		t.Fatalf("history: %+v", h)
	}
}
