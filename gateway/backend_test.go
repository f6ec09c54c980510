package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/protocol"
)

// sessionBackend is an application that knows its users by a session cookie: sid=alice-session
// is alice; anything else is refused.
func sessionBackend(t *testing.T, calls *atomic.Int32) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get(gateway.SecretHeader) != "backend-secret-0123" {
			http.Error(w, "who are you?", 403)
			return
		}
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
		Backend:    gateway.Backend{SubscribeURL: be.URL + "/subscribe", Secret: "backend-secret-0123"},
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

// The publish hook may replace the data; rpc is answered by the backend.
func TestPublishAndRPCThroughBackend(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			User   string          `json:"user"`
			Data   json.RawMessage `json:"data"`
			Method string          `json:"method"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/publish":
			if string(req.Data) == `"bad word"` {
				_, _ = io.WriteString(w, `{"error":{"code":104,"message":"mind your language"}}`)
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"result": map[string]any{"data": map[string]any{"by": req.User, "text": req.Data}}})
		case "/rpc":
			_ = json.NewEncoder(w).Encode(map[string]any{"result": map[string]any{"data": map[string]any{"method": req.Method, "user": req.User}}})
		}
	}))
	defer be.Close()
	cfg := &gateway.Config{Auth: gateway.Auth{JWT: gateway.JWT{HMACSecret: secret}},
		Backend: gateway.Backend{PublishURL: be.URL + "/publish", RPCURL: be.URL + "/rpc"}}
	s := start(t, cfg, nil)
	c := dialV1(t, s.url, nil)
	c.ok(map[string]any{"op": "connect", "token": token(t, "alice", time.Hour, "")})
	c.ok(map[string]any{"op": "publish", "channel": "chat:x", "data": "hi"})
	c.fails(map[string]any{"op": "publish", "channel": "chat:x", "data": "bad word"}, protocol.CodeForbidden)
	var h protocol.HistoryResult
	if err := json.Unmarshal(c.ok(map[string]any{"op": "history", "channel": "chat:x"}), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Publications) != 1 || string(h.Publications[0].Data) != `{"by":"alice","text":"hi"}` {
		t.Fatalf("history %+v: want the backend's replacement only", h)
	}
	if res := c.ok(map[string]any{"op": "rpc", "method": "profile.get", "data": map[string]any{}}); string(res) != `{"method":"profile.get","user":"alice"}` {
		t.Fatalf("rpc answered %s", res)
	}
}

// An rpc call is made once by default: the backend may have run a method that is not idempotent
// when its answer is lost. backend.rpc_retries opts in to more attempts; connect keeps its own.
func TestRPCRetriesAreOptIn(t *testing.T) {
	var calls atomic.Int32
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer be.Close()
	for _, tc := range []struct{ retries, want int32 }{{0, 1}, {2, 3}} {
		calls.Store(0)
		cfg := &gateway.Config{Backend: gateway.Backend{RPCURL: be.URL, RPCRetries: int(tc.retries)}}
		s := start(t, cfg, nil)
		c := dialV1(t, s.url, nil)
		c.fails(map[string]any{"op": "rpc", "method": "charge.card", "data": map[string]any{}}, protocol.CodeUnavailable)
		if n := calls.Load(); n != tc.want {
			t.Errorf("rpc_retries %d: the backend was called %d times, want %d", tc.retries, n, tc.want)
		}
	}
	if err := (&gateway.Config{Backend: gateway.Backend{RPCRetries: -1}}).Check(); err == nil || !strings.Contains(err.Error(), "backend.rpc_retries") {
		t.Errorf("rpc_retries -1: Check said %v, want an error naming backend.rpc_retries", err)
	}
}
