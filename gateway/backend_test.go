package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/protocol"
)

// sessionBackend is an application that knows its users by a session cookie: sid=alice-session
// is alice; anything else is refused.
func sessionBackend(t *testing.T, calls *atomic.Int32) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Transport string            `json:"transport"`
			Headers   map[string]string `json:"headers"`
			Channel   string            `json:"channel"`
			User      string            `json:"user"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "bad body", 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/connect":
			c, err := r.Cookie("sid")
			if err != nil || c.Value != "alice-session" {
				_, _ = io.WriteString(w, `{"error":{"code":109,"message":"no session"}}`)
				return
			}
			_, _ = io.WriteString(w, `{"result":{"user":"alice","info":{"name":"Alice"},"channels":["#alice"]}}`)
		case "/subscribe":
			if req.User == "alice" && req.Channel == "team:red" {
				_, _ = io.WriteString(w, `{"result":{}}`)
				return
			}
			_, _ = io.WriteString(w, `{"error":{"code":104,"message":"not your team"}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestConnectThroughBackend(t *testing.T) {
	var calls atomic.Int32
	be := sessionBackend(t, &calls)
	cfg := &gateway.Config{
		Auth:       gateway.Auth{ConnectURL: be.URL + "/connect"},
		Namespaces: []gateway.Namespace{{Prefix: "team:", ChannelRules: gateway.ChannelRules{Subscribe: gateway.SubscribeBackend}}},
		Backend:    gateway.Backend{SubscribeURL: be.URL + "/subscribe"},
	}
	s := start(t, cfg, nil)

	// Raw: the backend decides before the upgrade, from the cookie.
	ws, _, err := websocket.DefaultDialer.Dial(s.url, http.Header{"Cookie": {"sid=alice-session"}})
	if err != nil {
		t.Fatalf("raw with the session: %v", err)
	}
	ws.Close()
	status, body, _ := refused(t, s.url, http.Header{"Cookie": {"sid=forged"}})
	if status != http.StatusForbidden || !strings.Contains(body, "no session") {
		t.Fatalf("raw with a forged cookie: %d %q, want 403 with the backend's reason", status, body)
	}

	// wsgate.v1: connect without a token asks the backend with the handshake's cookies.
	c := dialV1(t, s.url, http.Header{"Cookie": {"sid=alice-session"}})
	var res protocol.ConnectResult
	if err := json.Unmarshal(c.ok(map[string]any{"op": "connect"}), &res); err != nil {
		t.Fatal(err)
	}
	if res.User != "alice" || len(res.Subscribed) != 1 || res.Subscribed[0].Channel != "#alice" {
		t.Fatalf("connect through the backend: %+v", res)
	}
	c.ok(map[string]any{"op": "subscribe", "channel": "team:red"})
	c.fails(map[string]any{"op": "subscribe", "channel": "team:blue"}, protocol.CodeForbidden)

	bad := dialV1(t, s.url, http.Header{"Cookie": {"sid=forged"}})
	bad.fails(map[string]any{"op": "connect"}, protocol.CodeUnauthorized)
	if code := closedWith(t, bad.ws); code != protocol.CloseUnauthorized {
		t.Fatalf("refused by the backend: closed with %d, want %d", code, protocol.CloseUnauthorized)
	}
	if calls.Load() < 5 {
		t.Fatalf("the backend was called %d times", calls.Load())
	}
}
