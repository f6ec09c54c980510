package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/protocol"
)

// namespacesConfig: news: read-only for clients, private: behind channel tokens, quiet: without
// presence, nohist: without history, nojl: presence but no join/leave pushes.
func namespacesConfig() *gateway.Config {
	return &gateway.Config{
		Auth: gateway.Auth{JWT: gateway.JWT{HMACSecret: secret}},
		Namespaces: []gateway.Namespace{
			{Prefix: "news:", ChannelRules: gateway.ChannelRules{Publish: boolp(false)}},
			{Prefix: "private:", ChannelRules: gateway.ChannelRules{Subscribe: gateway.SubscribeToken}},
			{Prefix: "quiet:", ChannelRules: gateway.ChannelRules{Presence: boolp(false)}},
			{Prefix: "nohist:", ChannelRules: gateway.ChannelRules{History: boolp(false)}},
			{Prefix: "nojl:", ChannelRules: gateway.ChannelRules{JoinLeave: boolp(false)}},
		},
	}
}

func TestNamespacePermissions(t *testing.T) {
	s := start(t, namespacesConfig(), nil)
	alice := dialV1(t, s.url, nil)
	alice.ok(map[string]any{"op": "connect", "token": token(t, "alice", time.Hour, `{"name":"Alice"}`)})

	// news: clients may read, not publish.
	alice.ok(map[string]any{"op": "subscribe", "channel": "news:today"})
	alice.fails(map[string]any{"op": "publish", "channel": "news:today", "data": 1}, protocol.CodeForbidden)
	alice.ok(map[string]any{"op": "publish", "channel": "chat:x", "data": 1}) // outside namespaces: open

	// private: a channel token naming the channel and the user.
	alice.fails(map[string]any{"op": "subscribe", "channel": "private:a"}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "history", "channel": "private:a"}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "publish", "channel": "private:a", "data": 1}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "subscribe", "channel": "private:a", "token": channelToken(t, "alice", "private:b")}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "subscribe", "channel": "private:a", "token": channelToken(t, "bob", "private:a")}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "subscribe", "channel": "private:a", "token": "not.a.token"}, protocol.CodeForbidden)
	alice.ok(map[string]any{"op": "subscribe", "channel": "private:a", "token": channelToken(t, "alice", "private:a")})
	alice.ok(map[string]any{"op": "history", "channel": "private:a"}) // let in: may read its history
	alice.ok(map[string]any{"op": "publish", "channel": "private:a", "data": 1})

	// User channels: #bob is bob's; #alice and dm:#alice,bob are alice's too.
	alice.fails(map[string]any{"op": "subscribe", "channel": "#bob"}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "publish", "channel": "dm:#bob,carol", "data": 1}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "presence", "channel": "#bob"}, protocol.CodeForbidden)
	alice.ok(map[string]any{"op": "subscribe", "channel": "#alice"})
	alice.ok(map[string]any{"op": "subscribe", "channel": "dm:#alice,bob"})
	alice.ok(map[string]any{"op": "publish", "channel": "dm:#alice,bob", "data": "hi"})

	// Presence, join/leave and history per namespace.
	alice.ok(map[string]any{"op": "subscribe", "channel": "quiet:room"})
	alice.fails(map[string]any{"op": "presence", "channel": "quiet:room"}, protocol.CodeNotAvailable)
	alice.fails(map[string]any{"op": "subscribe", "channel": "quiet:other", "presence": true}, protocol.CodeNotAvailable)
	alice.fails(map[string]any{"op": "subscribe", "channel": "nojl:room", "presence": true}, protocol.CodeNotAvailable)
	alice.ok(map[string]any{"op": "subscribe", "channel": "nojl:room"})
	alice.ok(map[string]any{"op": "presence", "channel": "nojl:room"})
	alice.fails(map[string]any{"op": "history", "channel": "nohist:room"}, protocol.CodeNotAvailable)
	alice.ok(map[string]any{"op": "history", "channel": "chat:x"})

	// Presence lists the name from the token's info.
	var p protocol.PresenceResult
	if err := json.Unmarshal(alice.ok(map[string]any{"op": "presence", "channel": "#alice"}), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Clients) != 1 || p.Clients[0].User != "alice" || string(p.Clients[0].Info) != `{"name":"Alice"}` {
		t.Fatalf("presence %+v, want alice with her info", p)
	}

	// Bob, with the same rules, is refused alice's channel and may use his.
	bob := dialV1(t, s.url, nil)
	bob.ok(map[string]any{"op": "connect", "token": token(t, "bob", time.Hour, "")})
	bob.fails(map[string]any{"op": "subscribe", "channel": "#alice"}, protocol.CodeForbidden)
	bob.ok(map[string]any{"op": "subscribe", "channel": "#bob"})
	bob.fails(map[string]any{"op": "history", "channel": "private:a"}, protocol.CodeForbidden) // alice's grant is hers
}

func TestConnectRefusals(t *testing.T) {
	s := start(t, namespacesConfig(), nil)
	for _, tc := range []struct {
		name  string
		tok   string
		code  protocol.Code
		close int
	}{
		{"no token", "", protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"garbage", "x.y.z", protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"expired", token(t, "alice", -time.Hour, ""), protocol.CodeTokenExpired, protocol.CloseTokenExpired},
	} {
		c := dialV1(t, s.url, nil)
		req := map[string]any{"op": "connect"}
		if tc.tok != "" {
			req["token"] = tc.tok
		}
		c.fails(req, tc.code)
		if code := closedWith(t, c.ws); code != tc.close {
			t.Errorf("%s: closed with %d, want %d", tc.name, code, tc.close)
		}
	}
	// Before connect, nothing else is served.
	c := dialV1(t, s.url, nil)
	c.fails(map[string]any{"op": "subscribe", "channel": "chat:x"}, protocol.CodeUnauthorized)
}

func TestConnectionsPerUser(t *testing.T) {
	cfg := namespacesConfig()
	cfg.Limits.ConnectionsPerUser = 2
	s := start(t, cfg, nil)
	tok := token(t, "alice", time.Hour, "")
	a1, a2 := dialV1(t, s.url, nil), dialV1(t, s.url, nil)
	a1.ok(map[string]any{"op": "connect", "token": tok})
	a2.ok(map[string]any{"op": "connect", "token": tok})
	a3 := dialV1(t, s.url, nil)
	a3.fails(map[string]any{"op": "connect", "token": tok}, protocol.CodeConnectionLimit)
	if code := closedWith(t, a3.ws); code != protocol.CloseConnectionLimit {
		t.Fatalf("the third connection closed with %d, want %d", code, protocol.CloseConnectionLimit)
	}
	// Raw connections of the user count too: refused before the upgrade.
	status, body, retry := refused(t, s.url, http.Header{"Authorization": {"Bearer " + tok}})
	if status != http.StatusTooManyRequests || !strings.Contains(body, "too many connections") || retry == "" {
		t.Fatalf("raw over the cap: %d %q Retry-After %q, want 429 with Retry-After", status, body, retry)
	}
	// Another user is not counted against alice.
	dialV1(t, s.url, nil).ok(map[string]any{"op": "connect", "token": token(t, "bob", time.Hour, "")})
	// One of alice's leaves: a place frees up.
	a1.ws.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialV1(t, s.url, nil)
		if r := c.do(map[string]any{"op": "connect", "token": tok}); r.Error == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's place was not given back after her connection closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHandshakesPerAddress(t *testing.T) {
	s := start(t, &gateway.Config{Limits: gateway.Limits{HandshakesPerSecond: 0.5, HandshakeBurst: 2}}, nil)
	for range 2 {
		ws, _, err := websocket.DefaultDialer.Dial(s.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.Close()
	}
	status, body, retry := refused(t, s.url, nil)
	if status != http.StatusTooManyRequests || !strings.Contains(body, "too many handshakes") || retry != "2" {
		t.Fatalf("third handshake: %d %q Retry-After %q, want 429, Retry-After 2", status, body, retry)
	}
}

func TestRawTokenSources(t *testing.T) {
	cfg := &gateway.Config{Auth: gateway.Auth{JWT: gateway.JWT{HMACSecret: secret}, Cookie: "wsgate_token", Query: "token"}}
	s := start(t, cfg, nil)
	tok := token(t, "alice", time.Hour, "")
	for _, tc := range []struct {
		name string
		url  string
		h    http.Header
	}{
		{"bearer", s.url, http.Header{"Authorization": {"Bearer " + tok}}},
		{"cookie", s.url, http.Header{"Cookie": {"other=1; wsgate_token=" + tok}}},
		{"query", s.url + "?token=" + tok, nil},
	} {
		ws, _, err := websocket.DefaultDialer.Dial(tc.url, tc.h)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, m, err := ws.ReadMessage(); err != nil || string(m) != "hi done" {
			t.Fatalf("%s: echo %q %v", tc.name, m, err)
		}
		ws.Close()
	}
	for _, tc := range []struct {
		name, url, want string
		h               http.Header
	}{
		{"none", s.url, "token required: send it in an Authorization: Bearer header, or the cookie wsgate_token, or the query parameter token", nil},
		{"bad bearer", s.url, "Authorization header: jwtauth: invalid token", http.Header{"Authorization": {"Bearer x.y.z"}}},
		{"forged cookie", s.url, "cookie wsgate_token: jwtauth: invalid token", http.Header{"Cookie": {"wsgate_token=" + forged(tok)}}},
		{"expired query", s.url + "?token=" + token(t, "alice", -time.Hour, ""), "query parameter token: jwtauth: token expired", nil},
	} {
		status, body, _ := refused(t, tc.url, tc.h)
		if status != http.StatusUnauthorized || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want 401 with %q", tc.name, status, body, tc.want)
		}
	}
}

// forged keeps a token's header and signature and changes its user.
func forged(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = strings.TrimRight(parts[1], "=")
	return parts[0] + "." + "eyJzdWIiOiJtYWxsb3J5In0" + "." + parts[2]
}

// A raw connection lives as long as its token: at exp it is closed with 4501, to come back with
// a fresh one.
func TestRawExpiry(t *testing.T) {
	s := start(t, &gateway.Config{Auth: gateway.Auth{JWT: gateway.JWT{HMACSecret: secret}}}, nil)
	tok := token(t, "alice", 1500*time.Millisecond, "")
	ws, _, err := websocket.DefaultDialer.Dial(s.url, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if code := closedWith(t, ws); code != protocol.CloseTokenExpired {
		t.Fatalf("closed with %d, want %d", code, protocol.CloseTokenExpired)
	}
}

// A wsgate.v1 connection that sent its token in the upgrade request connects without one.
func TestV1ConnectFromUpgradeToken(t *testing.T) {
	s := start(t, &gateway.Config{Auth: gateway.Auth{JWT: gateway.JWT{HMACSecret: secret}}}, nil)
	c := dialV1(t, s.url, http.Header{"Authorization": {"Bearer " + token(t, "alice", time.Hour, "")}})
	var res protocol.ConnectResult
	if err := json.Unmarshal(c.ok(map[string]any{"op": "connect"}), &res); err != nil {
		t.Fatal(err)
	}
	if res.User != "alice" {
		t.Fatalf("connected as %+v, want alice", res)
	}
}

// Anonymous lets connections without a token in; with one it must still be valid.
func TestAnonymous(t *testing.T) {
	s := start(t, &gateway.Config{Auth: gateway.Auth{JWT: gateway.JWT{HMACSecret: secret}, Anonymous: true}}, nil)
	c := dialV1(t, s.url, nil)
	c.ok(map[string]any{"op": "connect"})
	c.fails(map[string]any{"op": "subscribe", "channel": "#alice"}, protocol.CodeForbidden)
	c.ok(map[string]any{"op": "subscribe", "channel": "chat:x"})
	ws, _, err := websocket.DefaultDialer.Dial(s.url, nil)
	if err != nil {
		t.Fatalf("raw without a token: %v", err)
	}
	ws.Close()
	status, _, _ := refused(t, s.url, http.Header{"Authorization": {"Bearer x.y.z"}})
	if status != http.StatusUnauthorized {
		t.Fatalf("a bad token with anonymous allowed: %d, want 401", status)
	}
}

// The zero Config is the open server: anyone, anything, no connect needed.
func TestZeroConfigIsOpen(t *testing.T) {
	s := start(t, &gateway.Config{}, nil)
	c := dialV1(t, s.url, nil)
	c.ok(map[string]any{"op": "subscribe", "channel": "news:x", "presence": true})
	c.ok(map[string]any{"op": "publish", "channel": "news:x", "data": 1})
	c.ok(map[string]any{"op": "presence", "channel": "news:x"})
	c.ok(map[string]any{"op": "history", "channel": "news:x"})
	c.fails(map[string]any{"op": "subscribe", "channel": "#bob"}, protocol.CodeForbidden) // no one is bob
}

// A client that invents addresses (here through a trusted proxy's X-Forwarded-For) costs the
// node at most limits.handshake_addresses buckets; an address evicted starts again full.
func TestHandshakeBucketsBounded(t *testing.T) {
	cfg := &gateway.Config{Limits: gateway.Limits{HandshakesPerSecond: 0.1, HandshakeBurst: 1, HandshakeAddresses: 50}}
	s := start(t, cfg, &wsgate.Config{TrustedProxies: []string{"127.0.0.0/8"}})
	from := func(i int) http.Header {
		return http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.%d.%d", i/250, i%250+1)}}
	}
	for i := range 500 {
		ws, _, err := websocket.DefaultDialer.Dial(s.url, from(i))
		if err != nil {
			t.Fatalf("address %d: %v", i, err)
		}
		ws.Close()
		if n := s.gw.HandshakeAddresses(); n > 50 {
			t.Fatalf("%d buckets after %d addresses, bound 50", n, i+1)
		}
	}
	if status, _, _ := refused(t, s.url, from(499)); status != http.StatusTooManyRequests {
		t.Fatalf("the last address again: %d, want 429", status)
	}
	ws, _, err := websocket.DefaultDialer.Dial(s.url, from(0)) // evicted long ago: a full bucket
	if err != nil {
		t.Fatalf("an evicted address: %v", err)
	}
	ws.Close()
}
