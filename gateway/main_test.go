package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/jwtauth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "test-secret-0123456789abcdef-0123456789"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// server is a gateway in front of a hub on the in-memory broker, served on loopback.
type server struct {
	url string // ws://.../
	gw  *gateway.Gateway
	hub *hub.Hub
	ws  *wsgate.Server
}

// echo answers raw messages "<msg> done", as wsgate serve does.
var echo = wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
	_ = c.Send(m.Type, append(append([]byte(nil), m.Data...), " done"...))
})

func start(t *testing.T, cfg *gateway.Config, wsCfg *wsgate.Config) *server {
	t.Helper()
	return startLogged(t, cfg, wsCfg, quiet)
}

func startLogged(t *testing.T, cfg *gateway.Config, wsCfg *wsgate.Config, log *slog.Logger) *server {
	t.Helper()
	gw, err := gateway.New(context.Background(), cfg, gateway.Deps{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts := hub.Options{Logger: log, PingInterval: -1}
	gw.HubOptions(&opts)
	h, err := hub.New(context.Background(), memory.New(nil), &opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Bind(h); err != nil {
		t.Fatal(err)
	}
	c := wsgate.Config{}
	if wsCfg != nil {
		c = *wsCfg
	}
	c.Subprotocols = []string{protocol.Subprotocol}
	c.Admit = gw.Admit
	c.Logger = log
	ws, err := wsgate.NewServer(gw.Handler(h.Handler(echo)), &c)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(ws)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ws.Shutdown(ctx)
		ts.Close()
		_ = h.Close(ctx)
		_ = gw.Close()
	})
	return &server{url: "ws" + strings.TrimPrefix(ts.URL, "http") + "/", gw: gw, hub: h, ws: ws}
}

// token mints a connection token for user, valid for ttl.
func token(t *testing.T, user string, ttl time.Duration, info string) string {
	t.Helper()
	c := jwtauth.Claims{User: user, ExpiresAt: time.Now().Add(ttl)}
	if info != "" {
		c.Info = json.RawMessage(info)
	}
	tok, err := jwtauth.Signer{Alg: jwtauth.HS256, Key: []byte(secret)}.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// channelToken mints a channel token for user and channel.
func channelToken(t *testing.T, user, channel string) string {
	t.Helper()
	tok, err := jwtauth.Signer{Alg: jwtauth.HS256, Key: []byte(secret)}.Mint(jwtauth.Claims{User: user, Channel: channel,
		ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// v1 is a wsgate.v1 client on gorilla/websocket.
type v1 struct {
	t  *testing.T
	ws *websocket.Conn
	id uint64
}

func dialV1(t *testing.T, url string, h http.Header) *v1 {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(url, h)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return &v1{t: t, ws: ws}
}

type reply struct {
	ID     uint64          `json:"id"`
	Push   string          `json:"push"`
	Result json.RawMessage `json:"result"`
	Error  *protocol.Error `json:"error"`
}

// do sends a request (its id set) and returns its reply, skipping pushes.
func (c *v1) do(req map[string]any) reply {
	c.t.Helper()
	c.id++
	req["id"] = c.id
	if err := c.ws.WriteJSON(req); err != nil {
		c.t.Fatalf("write %v: %v", req, err)
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var r reply
		if err := c.ws.ReadJSON(&r); err != nil {
			c.t.Fatalf("reading the reply to %v: %v", req, err)
		}
		if r.Push == "" && r.ID == c.id {
			return r
		}
	}
}

// ok sends req and fails unless it succeeds.
func (c *v1) ok(req map[string]any) json.RawMessage {
	c.t.Helper()
	r := c.do(req)
	if r.Error != nil {
		c.t.Fatalf("%v: error %v", req, r.Error)
	}
	return r.Result
}

// fails sends req and fails unless it is refused with code.
func (c *v1) fails(req map[string]any, code protocol.Code) *protocol.Error {
	c.t.Helper()
	r := c.do(req)
	if r.Error == nil || r.Error.Code != code {
		c.t.Fatalf("%v: answered %s / %v, want error %d", req, r.Result, r.Error, code)
	}
	return r.Error
}

// closed waits for the server's close and returns its code.
func closedWith(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if ok := asClose(err, &ce); ok {
				return ce.Code
			}
			t.Fatalf("read ended without a close frame: %v", err)
		}
	}
}

func asClose(err error, ce **websocket.CloseError) bool {
	c, ok := err.(*websocket.CloseError)
	if ok {
		*ce = c
	}
	return ok
}

// refused dials a raw connection and returns the HTTP refusal: status, body, Retry-After.
func refused(t *testing.T, url string, h http.Header) (int, string, string) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err == nil {
		ws.Close()
		t.Fatalf("dial %s with %v: upgraded, want a refusal", url, h)
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), resp.Header.Get("Retry-After")
}

func boolp(b bool) *bool { return &b }
func intp(n int) *int    { return &n }

// dialRaw opens a raw connection.
func dialRaw(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatalf("dial raw: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}
