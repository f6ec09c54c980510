package pubsub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/client/pubsub"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// gate is a real hub whose Connect and Refresh hooks take tokens "USER:N" that last ttl, with
// the user channel #USER subscribed from the server side; it records what they were given.
type gate struct {
	h   *hub.Hub
	url string
	ttl time.Duration

	mu        sync.Mutex
	connects  []string // the tokens of the connects, in order
	refreshes []string
	conns     []*wsgate.Conn
	refuse    map[string]error // a token's refusal
}

func newGate(t *testing.T, ttl time.Duration, o hub.Options) *gate {
	g := &gate{ttl: ttl, refuse: map[string]error{}}
	identity := func(token string) (*hub.Identity, error) {
		g.mu.Lock()
		err := g.refuse[token]
		g.mu.Unlock()
		if err != nil {
			return nil, err
		}
		user, _, ok := strings.Cut(token, ":")
		if !ok {
			return nil, protocol.Errorf(protocol.CodeUnauthorized, "not a token")
		}
		return &hub.Identity{User: user, Info: json.RawMessage(fmt.Sprintf(`{"name":%q}`, user)), ExpiresAt: time.Now().Add(g.ttl), Channels: []string{"#" + user}}, nil
	}
	o.Connect = func(_ context.Context, c *wsgate.Conn, token string) (*hub.Identity, error) {
		g.mu.Lock()
		g.connects = append(g.connects, token)
		g.conns = append(g.conns, c)
		g.mu.Unlock()
		return identity(token)
	}
	if o.Refresh == nil {
		o.Refresh = func(_ context.Context, _ *wsgate.Conn, _ *hub.Identity, token string) (*hub.Identity, error) {
			g.mu.Lock()
			g.refreshes = append(g.refreshes, token)
			g.mu.Unlock()
			return identity(token)
		}
	}
	h, err := hub.New(context.Background(), memory.New(nil), &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	g.h = h
	g.url = startNode(t, h.Handler(nil)).url
	return g
}

func (g *gate) seen() (connects, refreshes []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.connects...), append([]string(nil), g.refreshes...)
}

// counter is a GetToken giving "USER:1", "USER:2", …
func counter(user string) func(context.Context) (string, error) {
	var mu sync.Mutex
	n := 0
	return func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("%s:%d", user, n), nil
	}
}

// authRecorder adds the connect and unsubscribe callbacks to a recorder's.
type authRecorder struct {
	recorder
	connected    []pubsub.Connected
	ended        []string
	disconnected []error
}

func (r *authRecorder) options(o *pubsub.Options) *pubsub.Options {
	r.recorder.options(o)
	o.OnConnected = func(c pubsub.Connected) { r.mu.Lock(); r.connected = append(r.connected, c); r.mu.Unlock() }
	o.OnUnsubscribed = func(ch string) { r.mu.Lock(); r.ended = append(r.ended, ch); r.mu.Unlock() }
	o.OnDisconnect = func(_ string, err error) { r.mu.Lock(); r.disconnected = append(r.disconnected, err); r.mu.Unlock() }
	return o
}

// TestConnectRefreshAndServerChannels: the session connects with its token first, gets the
// server's #alice subscription (Server: true) and its publications, and refreshes by itself before
// the 2 s token expires: the connection outlives several expiries.
func TestConnectRefreshAndServerChannels(t *testing.T) {
	g := newGate(t, 2*time.Second, hub.Options{RefreshGrace: 200 * time.Millisecond})
	var r authRecorder
	o := quick()
	o.Token = "alice:0"
	o.GetToken = counter("alice")
	s, err := pubsub.New([]string{g.url}, r.options(o))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe("chat", nil); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	r.waitFor(t, "connected and subscribed", func() bool { return len(r.connected) == 1 && len(r.subscribed) == 2 })
	c := r.connected[0]
	if c.User != "alice" || c.ExpiresIn != 2*time.Second || len(c.Subscribed) != 1 || c.Subscribed[0] != "#alice" || c.Client == "" {
		t.Fatalf("connected %+v", c)
	}
	for _, sb := range r.subscribed {
		if sb.Server != (sb.Channel == "#alice") {
			t.Fatalf("subscribed %+v: Server wrong", sb)
		}
	}
	if _, err := g.h.Publish(context.Background(), "#alice", []byte(`"for alice"`)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the publication on #alice", func() bool { return len(r.pubs) == 1 })
	if p := r.pubs[0]; p.Channel != "#alice" || string(p.Data) != `"for alice"` {
		t.Fatalf("publication %+v", p)
	}
	got, err := s.RPC(context.Background(), "x", nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNotAvailable || got != nil {
		t.Fatalf("rpc without a hook: %s, %v; want 112", got, err)
	}

	time.Sleep(4500 * time.Millisecond) // two expiries and more
	connects, refreshes := g.seen()
	if len(connects) != 1 || connects[0] != "alice:0" {
		t.Fatalf("connects %q: want the token option once", connects)
	}
	if len(refreshes) < 2 || refreshes[0] != "alice:1" || refreshes[1] != "alice:2" {
		t.Fatalf("refreshes %q: want alice:1, alice:2, …", refreshes)
	}
	r.mu.Lock()
	disconnected, errs := len(r.disconnected), len(r.errs)
	r.mu.Unlock()
	if disconnected != 0 || errs != 0 {
		t.Fatalf("disconnected %v, errors %v", r.disconnected, r.errs)
	}
	publish(t, s, "chat", "still connected")
}

// TestTokenExpiredReconnects: a server without a refresh hook lets the identity lapse and closes
// with 4501; the session reconnects with a fresh token from GetToken, and the server's #alice
// subscription goes on from where it was: what was published meanwhile comes from history.
func TestTokenExpiredReconnects(t *testing.T) {
	g := newGate(t, time.Second, hub.Options{
		RefreshGrace: 100 * time.Millisecond,
		Refresh: func(context.Context, *wsgate.Conn, *hub.Identity, string) (*hub.Identity, error) {
			return nil, protocol.Errorf(protocol.CodeNotAvailable, "no refresh here")
		},
	})
	var r authRecorder
	o := quick()
	o.GetToken = counter("alice")
	s, err := pubsub.New([]string{g.url}, r.options(o))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	r.waitFor(t, "connected", func() bool { return len(r.connected) == 1 && len(r.subscribed) == 1 })
	if _, err := g.h.Publish(context.Background(), "#alice", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the first publication", func() bool { return len(r.pubs) == 1 })
	r.waitFor(t, "the close 4501", func() bool { return len(r.disconnected) == 1 })
	var ce *wsgate.CloseError
	if !errors.As(r.disconnected[0], &ce) || ce.Code != protocol.CloseTokenExpired {
		t.Fatalf("closed with %v, want 4501", r.disconnected[0])
	}
	if _, err := g.h.Publish(context.Background(), "#alice", []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "a reconnect and the missed publication", func() bool { return len(r.connected) == 2 && len(r.pubs) == 2 })
	connects, _ := g.seen()
	if len(connects) < 2 || connects[0] != "alice:1" || connects[1] == "alice:1" {
		t.Fatalf("connects %q: the reconnect must ask GetToken for a fresh token", connects)
	}
	if p := r.pubs[1]; string(p.Data) != "2" || p.Offset != 2 {
		t.Fatalf("publication %+v", p)
	}
	sb := r.subscribed[1]
	if !sb.Server || !sb.Resubscribed || !sb.Recovered || sb.Since == nil || sb.Since.Offset != 1 {
		t.Fatalf("the second subscribe %+v: want the server's, recovered from offset 1", sb)
	}
}

// TestConnectRefusals: 110 gets one fresh token; 109 ends Run with ErrUnauthorized and the
// server's error; a hook's plain error answers 109 and closes 4001: either ends Run.
func TestConnectRefusals(t *testing.T) {
	g := newGate(t, time.Minute, hub.Options{})
	g.refuse["alice:1"] = protocol.Errorf(protocol.CodeTokenExpired, "token expired")
	var r authRecorder
	o := quick()
	o.GetToken = counter("alice")
	s, _ := pubsub.New([]string{g.url}, r.options(o))
	run(t, s)
	r.waitFor(t, "connected with the second token", func() bool { return len(r.connected) == 1 })
	if connects, _ := g.seen(); len(connects) != 2 || connects[1] != "alice:2" {
		t.Fatalf("connects %q", connects)
	}

	for _, tc := range []struct {
		name   string
		refuse error
		check  func(error) bool
	}{
		{"109", protocol.Errorf(protocol.CodeUnauthorized, "unknown user"), func(err error) bool {
			var pe *protocol.Error
			return errors.Is(err, pubsub.ErrUnauthorized) && errors.As(err, &pe) && pe.Code == protocol.CodeUnauthorized
		}},
		{"110 twice", protocol.Errorf(protocol.CodeTokenExpired, "token expired"), func(err error) bool {
			return errors.Is(err, pubsub.ErrUnauthorized)
		}},
		{"hook error", errors.New("no such session"), func(err error) bool { // 109, then the server's close 4001
			var ce *wsgate.CloseError
			return errors.Is(err, pubsub.ErrUnauthorized) || errors.As(err, &ce) && ce.Code == protocol.CloseUnauthorized
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := strings.ReplaceAll(tc.name, " ", "")
			g.mu.Lock()
			g.refuse[user+":1"], g.refuse[user+":2"] = tc.refuse, tc.refuse
			g.mu.Unlock()
			o := quick()
			o.GetToken = counter(user)
			s, _ := pubsub.New([]string{g.url}, o)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Run(ctx); !tc.check(err) {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

// TestServerSideSubscribeAndRPC: the hub subscribes and unsubscribes a live connection (pushes),
// and answers rpc through its hook.
func TestServerSideSubscribeAndRPC(t *testing.T) {
	g := newGate(t, time.Minute, hub.Options{
		RPC: func(_ context.Context, _ *wsgate.Conn, id *hub.Identity, method string, data json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(fmt.Sprintf(`{"user":%q,"method":%q,"data":%s}`, id.User, method, data)), nil
		},
	})
	var r authRecorder
	o := quick()
	o.Token = "bob:1"
	s, _ := pubsub.New([]string{g.url}, r.options(o))
	run(t, s)
	r.waitFor(t, "connected", func() bool { return len(r.connected) == 1 })
	res, err := s.RPC(context.Background(), "users.get", json.RawMessage(`{"id":7}`))
	if err != nil || string(res) != `{"user":"bob","method":"users.get","data":{"id":7}}` {
		t.Fatalf("rpc: %s, %v", res, err)
	}

	g.mu.Lock()
	conn := g.conns[0]
	g.mu.Unlock()
	if err := g.h.Subscribe(context.Background(), conn, "news"); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the subscribe push", func() bool { return len(r.subscribed) == 2 })
	if sb := r.subscribed[1]; sb.Channel != "news" || !sb.Server {
		t.Fatalf("subscribed %+v", sb)
	}
	if _, err := g.h.Publish(context.Background(), "news", []byte(`"extra"`)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the news", func() bool { return len(r.pubs) == 1 && r.pubs[0].Channel == "news" })
	if err := g.h.Unsubscribe(conn, "news"); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the unsubscribe push", func() bool { return len(r.ended) == 1 && r.ended[0] == "news" })
}
