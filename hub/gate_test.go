package hub_test

// The gateway's seam (issue 11): connect, refresh, expiry, rpc and the hooks, through real
// sockets from an independent client.

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
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// connOf returns the server's side of c.
func (e *env) connOf(t *testing.T, c *client) *wsgate.Conn {
	t.Helper()
	var conn *wsgate.Conn
	waitFor(t, "the server's connection", 2*time.Second, func() bool {
		e.srv.Range(func(x *wsgate.Conn) bool {
			if x.RemoteAddr().String() == c.ws.LocalAddr().String() {
				conn = x
			}
			return conn == nil
		})
		return conn != nil
	})
	return conn
}

// closed waits for c's end and returns its close code.
func (c *client) closed(within time.Duration) int {
	c.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-c.msgs:
			if !ok {
				return c.closeCode()
			}
		case <-deadline:
			c.t.Fatalf("connection still open after %v", within)
		}
	}
}

// tokens is a Connect hook: "user:<name>" identifies name (for an hour, with info and a user
// channel); other tokens refuse in the ways a gateway can.
func tokens(ctx context.Context, _ *wsgate.Conn, token string) (*hub.Identity, error) {
	switch {
	case strings.HasPrefix(token, "user:"):
		u := strings.TrimPrefix(token, "user:")
		return &hub.Identity{User: u, Info: json.RawMessage(`{"name":"` + strings.ToUpper(u) + `"}`),
			ExpiresAt: time.Now().Add(time.Hour), Channels: []string{"#" + u}}, nil
	case token == "expired":
		return nil, protocol.Errorf(protocol.CodeTokenExpired, "token expired")
	case token == "kick":
		return nil, &hub.Disconnect{Code: protocol.CloseDisconnected, Reason: "banned"}
	case token == "bigInfo":
		return &hub.Identity{User: "x", Info: json.RawMessage(`"` + strings.Repeat("i", hub.MaxInfoLen) + `"`)}, nil
	case token == "slow":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, errors.New("unknown token")
}

func TestConnectWithoutHook(t *testing.T) {
	var mu sync.Mutex
	var events []string
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	e := start(t, &hub.Options{
		UserID:       func(*wsgate.Conn) string { return "anon-user" },
		OnConnect:    func(_ *wsgate.Conn, id *hub.Identity) { note(fmt.Sprint("connect ", id == nil)) },
		OnDisconnect: func(_ *wsgate.Conn, id *hub.Identity) { note(fmt.Sprint("disconnect ", id == nil)) },
	}, nil)
	c := e.dial(t)
	if r := c.call("subscribe", `,"channel":"a"`, nil); r["result"] == nil { // connect is optional
		t.Fatalf("subscribe without connect: %v", strMap(r))
	}
	r := c.call("connect", `,"token":"anything"`, nil)
	var res protocol.ConnectResult
	if err := json.Unmarshal(r["result"], &res); err != nil || res.Client == "" || res.User != "anon-user" || res.ExpiresIn != 0 {
		t.Fatalf("connect without a hook: %v", strMap(r))
	}
	if code := errCode(t, c.call("connect", ``, nil)); code != protocol.CodeAlreadyConnected {
		t.Fatalf("second connect: %d", code)
	}
	if code := errCode(t, c.call("refresh", `,"token":"t"`, nil)); code != protocol.CodeNotAvailable {
		t.Fatalf("refresh without a hook: %d", code)
	}
	if code := errCode(t, c.call("rpc", `,"method":"m"`, nil)); code != protocol.CodeNotAvailable {
		t.Fatalf("rpc without a hook: %d", code)
	}
	if e.hub.Identity(e.connOf(t, c)) != nil {
		t.Fatal("an anonymous connection has an identity")
	}
	c.ws.Close()
	waitFor(t, "OnDisconnect", 2*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 2 })
	if fmt.Sprint(events) != "[connect true disconnect true]" {
		t.Fatalf("events %v", events)
	}
}

func TestConnect(t *testing.T) {
	var mu sync.Mutex
	var events []string
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	e := start(t, &hub.Options{Connect: tokens,
		OnConnect:    func(_ *wsgate.Conn, id *hub.Identity) { note("connect " + id.User) },
		OnDisconnect: func(_ *wsgate.Conn, id *hub.Identity) { note("disconnect " + id.User) },
	}, nil)
	e.hub.Publish(context.Background(), "#alice", []byte(`"before"`))
	c := e.dial(t)
	// Before connect: ping only.
	if r := c.call("ping", ``, nil); r["result"] == nil {
		t.Fatalf("ping before connect: %v", strMap(r))
	}
	for _, req := range []string{`"subscribe","channel":"a"`, `"publish","channel":"a","data":1`, `"presence","channel":"a"`,
		`"history","channel":"a"`, `"unsubscribe","channel":"a"`, `"rpc","method":"m"`, `"refresh","token":"t"`} {
		op, fields, _ := strings.Cut(req, ",")
		if code := errCode(t, c.call(strings.Trim(op, `"`), ","+fields, nil)); code != protocol.CodeUnauthorized {
			t.Fatalf("%s before connect: %d", req, code)
		}
	}
	if err := e.hub.Subscribe(context.Background(), e.connOf(t, c), "x"); !errors.Is(err, hub.ErrNotConnected) {
		t.Fatalf("server-side subscribe before connect: %v", err)
	}
	// A *protocol.Error is the reply; the connection stays, and may connect again.
	if code := errCode(t, c.call("connect", `,"token":"expired"`, nil)); code != protocol.CodeTokenExpired {
		t.Fatalf("expired token: %d", code)
	}
	r := c.call("connect", `,"token":"user:alice"`, nil)
	var res protocol.ConnectResult
	if err := json.Unmarshal(r["result"], &res); err != nil || res.User != "alice" || res.ExpiresIn < 3599 || res.ExpiresIn > 3600 ||
		len(res.Subscribed) != 1 || res.Subscribed[0].Channel != "#alice" || res.Subscribed[0].Offset != 1 || res.Subscribed[0].Epoch == "" {
		t.Fatalf("connect: %v", strMap(r))
	}
	if code := errCode(t, c.call("connect", `,"token":"user:alice"`, nil)); code != protocol.CodeAlreadyConnected {
		t.Fatalf("second connect: %d", code)
	}
	// The identity's channel is live, and the identity shows in presence.
	e.hub.Publish(context.Background(), "#alice", []byte(`"after"`))
	if p := c.push("pub"); string(p["data"]) != `"after"` || string(p["offset"]) != "2" {
		t.Fatalf("user channel: %v", strMap(p))
	}
	pr := presenceOf(t, c, "#alice", nil)
	if len(pr) != 1 || pr[0].User != "alice" || string(pr[0].Info) != `{"name":"ALICE"}` {
		t.Fatalf("presence %+v", pr)
	}
	if id := e.hub.Identity(e.connOf(t, c)); id == nil || id.User != "alice" || string(id.Info) != `{"name":"ALICE"}` {
		t.Fatalf("Hub.Identity %+v", id)
	}
	c.ws.Close()
	waitFor(t, "OnDisconnect", 2*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 2 })
	if fmt.Sprint(events) != "[connect alice disconnect alice]" {
		t.Fatalf("events %v", events)
	}
}

// TestConnectRefusals: each way a hook refuses, and what the hub refuses of a hook's identity.
func TestConnectRefusals(t *testing.T) {
	var disconnects sync.WaitGroup
	e := start(t, &hub.Options{Connect: tokens, RequestTimeout: 200 * time.Millisecond,
		OnDisconnect: func(*wsgate.Conn, *hub.Identity) { t.Error("OnDisconnect of a connection that never connected") }}, nil)
	defer disconnects.Wait()
	for _, tc := range []struct {
		token string
		code  protocol.Code
		close int
	}{
		{"kick", protocol.CodeForbidden, protocol.CloseDisconnected},
		{"garbage", protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"bigInfo", protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"slow", protocol.CodeUnauthorized, protocol.CloseUnauthorized}, // the hook's context ends at RequestTimeout
	} {
		c := e.dial(t)
		if code := errCode(t, c.call("connect", fmt.Sprintf(`,"token":%q`, tc.token), nil)); code != tc.code {
			t.Fatalf("%s: error %d, want %d", tc.token, code, tc.code)
		}
		if code := c.closed(2 * time.Second); code != tc.close {
			t.Fatalf("%s: closed with %d, want %d", tc.token, code, tc.close)
		}
	}
	// A token over protocol.MaxTokenLen never reaches the hook.
	c := e.dial(t)
	if code := errCode(t, c.call("connect", fmt.Sprintf(`,"token":%q`, strings.Repeat("t", protocol.MaxTokenLen+1)), nil)); code != protocol.CodeBadRequest {
		t.Fatalf("oversized token: %d", code)
	}
}

// TestConnectTimeout: a connection that does not connect is closed with 4002 at ConnectTimeout,
// however many requests it makes meanwhile; one that connected is not.
func TestConnectTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := start(t, &hub.Options{Connect: tokens, ConnectTimeout: timeout, RequestRate: 50, RequestBurst: 20}, nil)
	began := time.Now()
	good := e.dial(t)
	good.call("connect", `,"token":"user:bob"`, nil)
	var idle []*client
	for range 50 {
		idle = append(idle, e.dial(t))
	}
	flood := e.dial(t)
	answered := 0
	go func() { // owner: the test; a connect flood, each answered until the close
		for range 200 {
			if flood.ws.WriteMessage(1, []byte(`{"id":1,"op":"connect","token":"expired"}`)) != nil {
				return
			}
		}
	}()
	for {
		m, ok := flood.nextOrClosed()
		if !ok {
			break
		}
		if code := errCode(t, m); code != protocol.CodeTokenExpired && code != protocol.CodeRateLimited {
			t.Fatalf("flood answered %d", code)
		}
		answered++
	}
	if code := flood.closeCode(); code != protocol.CloseConnectTimeout {
		t.Fatalf("the flood closed with %d", code)
	}
	for _, c := range idle {
		if code := c.closed(2 * time.Second); code != protocol.CloseConnectTimeout {
			t.Fatalf("an idle connection closed with %d", code)
		}
	}
	if took := time.Since(began); took < timeout || took > timeout+2*time.Second {
		t.Fatalf("closed after %v, timeout %v", took, timeout)
	}
	if answered == 0 {
		t.Fatal("the flood got no answer")
	}
	if r := good.call("ping", ``, nil); r["result"] == nil {
		t.Fatalf("the connected one: %v", strMap(r))
	}
}

// expiring is a Connect hook whose identities expire after d, and a Refresh hook that extends
// "user:<same user>" by an hour, refuses another user, and errs on "err".
func expiring(d time.Duration) (connect func(context.Context, *wsgate.Conn, string) (*hub.Identity, error),
	refresh func(context.Context, *wsgate.Conn, *hub.Identity, string) (*hub.Identity, error)) {
	connect = func(_ context.Context, _ *wsgate.Conn, token string) (*hub.Identity, error) {
		return &hub.Identity{User: strings.TrimPrefix(token, "user:"), ExpiresAt: time.Now().Add(d)}, nil
	}
	refresh = func(_ context.Context, _ *wsgate.Conn, id *hub.Identity, token string) (*hub.Identity, error) {
		switch token {
		case "err":
			return nil, errors.New("backend down")
		case "expired":
			return nil, protocol.Errorf(protocol.CodeTokenExpired, "expired")
		case "kick":
			return nil, &hub.Disconnect{Code: protocol.CloseDisconnected, Reason: "bye", Err: protocol.Errorf(protocol.CodeUnauthorized, "revoked")}
		}
		return &hub.Identity{User: strings.TrimPrefix(token, "user:"), ExpiresAt: time.Now().Add(time.Hour)}, nil
	}
	return connect, refresh
}

// TestExpiry: at the identity's expiry a refresh push, and the close 4501 a grace later.
func TestExpiry(t *testing.T) {
	const life, grace = 300 * time.Millisecond, 300 * time.Millisecond
	connect, refresh := expiring(life)
	e := start(t, &hub.Options{Connect: connect, Refresh: refresh, RefreshGrace: grace}, nil)
	c := e.dial(t)
	began := time.Now()
	r := c.call("connect", `,"token":"user:carol"`, nil)
	var res protocol.ConnectResult
	if json.Unmarshal(r["result"], &res); res.ExpiresIn != 1 {
		t.Fatalf("expires_in of 300 ms: %v", strMap(r))
	}
	// Failed refreshes change nothing, and do not close.
	if code := errCode(t, c.call("refresh", `,"token":"err"`, nil)); code != protocol.CodeUnauthorized {
		t.Fatalf("failed refresh: %d", code)
	}
	if code := errCode(t, c.call("refresh", `,"token":"user:mallory"`, nil)); code != protocol.CodeUnauthorized {
		t.Fatalf("refresh as another user: %d", code)
	}
	if code := errCode(t, c.call("refresh", `,"token":"expired"`, nil)); code != protocol.CodeTokenExpired {
		t.Fatalf("expired refresh: %d", code)
	}
	c.push("refresh")
	if at := time.Since(began); at < life {
		t.Fatalf("refresh push after %v, expiry %v", at, life)
	}
	if code := c.closed(2 * time.Second); code != protocol.CloseTokenExpired {
		t.Fatalf("closed with %d", code)
	}
	if at := time.Since(began); at < life+grace || at > life+grace+time.Second {
		t.Fatalf("closed after %v, want %v", at, life+grace)
	}
}

// TestRefresh: a refresh within the grace keeps the connection; a *Disconnect from the hook
// closes it.
func TestRefresh(t *testing.T) {
	const life, grace = 200 * time.Millisecond, 200 * time.Millisecond
	connect, refresh := expiring(life)
	e := start(t, &hub.Options{Connect: connect, Refresh: refresh, RefreshGrace: grace}, nil)
	c := e.dial(t)
	c.call("connect", `,"token":"user:dave"`, nil)
	c.push("refresh")
	r := c.call("refresh", `,"token":"user:dave"`, nil)
	var res protocol.RefreshResult
	if json.Unmarshal(r["result"], &res); res.ExpiresIn < 3599 {
		t.Fatalf("refresh: %v", strMap(r))
	}
	time.Sleep(2 * (life + grace))
	if r := c.call("ping", ``, nil); r["result"] == nil {
		t.Fatalf("after the refresh: %v", strMap(r))
	}
	if id := e.hub.Identity(e.connOf(t, c)); id == nil || time.Until(id.ExpiresAt) < 59*time.Minute {
		t.Fatalf("identity after refresh %+v", id)
	}
	if code := errCode(t, c.call("refresh", `,"token":"kick"`, nil)); code != protocol.CodeUnauthorized {
		t.Fatalf("kick: %d", code)
	}
	if code := c.closed(2 * time.Second); code != protocol.CloseDisconnected {
		t.Fatalf("kick closed with %d", code)
	}
}

// TestRefreshRacingExpiry: refreshes sent at the end of the grace either land (and the
// connection lives on) or lose (it is closed 4501, and the refresh got no success first).
func TestRefreshRacingExpiry(t *testing.T) {
	const life, grace = 100 * time.Millisecond, 30 * time.Millisecond
	connect, refresh := expiring(life)
	slowRefresh := func(ctx context.Context, c *wsgate.Conn, id *hub.Identity, token string) (*hub.Identity, error) {
		time.Sleep(time.Duration(c.ID()%7) * 8 * time.Millisecond) // 0 to 48 ms: on either side of the grace
		return refresh(ctx, c, id, token)
	}
	e := start(t, &hub.Options{Connect: connect, Refresh: slowRefresh, RefreshGrace: grace}, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range 30 {
		c := e.dial(t)
		c.call("connect", fmt.Sprintf(`,"token":"user:u%d"`, i), nil)
		wg.Go(func() {
			refreshed := false
			for {
				m, ok := c.nextOrClosed()
				if !ok {
					if code := c.closeCode(); code != protocol.CloseTokenExpired || refreshed {
						t.Errorf("closed with %d after a refresh that succeeded: %v", code, refreshed)
					}
					mu.Lock()
					outcomes["closed"]++
					mu.Unlock()
					return
				}
				switch {
				case str(m["push"]) == "refresh":
					_ = c.ws.WriteMessage(1, fmt.Appendf(nil, `{"id":7,"op":"refresh","token":"user:u%d"}`, i))
				case string(m["id"]) == "7" && m["result"] != nil:
					refreshed = true
					time.Sleep(life + 2*grace) // it must live on
					_ = c.ws.WriteMessage(1, []byte(`{"id":8,"op":"ping"}`))
				case string(m["id"]) == "8":
					mu.Lock()
					outcomes["refreshed"]++
					mu.Unlock()
					c.ws.Close()
					return
				}
			}
		})
	}
	wg.Wait()
	if outcomes["closed"]+outcomes["refreshed"] != 30 {
		t.Fatalf("outcomes %v", outcomes)
	}
	t.Logf("outcomes %v", outcomes)
}

// TestRefreshWithoutConnect: a Refresh hook without a Connect hook extends an anonymous
// connection (it had no identity: it panicked on the nil one).
func TestRefreshWithoutConnect(t *testing.T) {
	_, refresh := expiring(time.Hour)
	e := start(t, &hub.Options{Refresh: refresh}, nil)
	c := e.dial(t)
	r := c.call("refresh", `,"token":"user:"`, nil)
	var res protocol.RefreshResult
	if json.Unmarshal(r["result"], &res); res.ExpiresIn < 3599 {
		t.Fatalf("refresh: %v", strMap(r))
	}
	if code := errCode(t, c.call("refresh", `,"token":"user:someone"`, nil)); code != protocol.CodeUnauthorized {
		t.Fatalf("refresh naming a user: %d", code)
	}
}

// TestConnectOfExpiredIdentity: an identity the Connect hook gives already expired is refused
// with 110 and the connection closed with 4501, as at its expiry while connected: it does not
// stay to connect again as someone else (the hook may have counted it as the first user's).
func TestConnectOfExpiredIdentity(t *testing.T) {
	e := start(t, &hub.Options{Connect: func(ctx context.Context, c *wsgate.Conn, token string) (*hub.Identity, error) {
		return &hub.Identity{User: token, ExpiresAt: time.Now().Add(-time.Second)}, nil
	}}, nil)
	c := e.dial(t)
	if code := errCode(t, c.call("connect", `,"token":"alice"`, nil)); code != protocol.CodeTokenExpired {
		t.Fatalf("connect with an expired identity: %d, want %d", code, protocol.CodeTokenExpired)
	}
	if code := c.closed(2 * time.Second); code != protocol.CloseTokenExpired {
		t.Fatalf("closed with %d, want %d", code, protocol.CloseTokenExpired)
	}
}
