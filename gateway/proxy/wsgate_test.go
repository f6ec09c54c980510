package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/gateway/proxy"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/protocol"
)

// TestClientOfThroughWsgate: a browser's session cookie travels from a real WebSocket handshake
// (gorilla/websocket as the browser) through wsgate.Conn and ClientOf to a real backend, which
// knows the user by it.
func TestClientOfThroughWsgate(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if sid, err := r.Cookie("sid"); err != nil || sid.Value != "alice-session" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"result":{"user":"alice"}}`)
	})
	p := newProxy(t, proxy.Config{Connect: proxy.Endpoint{URL: b.URL}})
	h := wsgate.HandlerFunc(func(c *wsgate.Conn, _ wsgate.Message) {
		ctx, cancel := context.WithTimeout(c.Context(), 5*time.Second)
		defer cancel()
		id, err := p.Connect(ctx, proxy.ConnectRequest{Client: proxy.ClientOf(c, fmt.Sprint(c.ID()), nil)})
		var d *hub.Disconnect
		switch {
		case errors.As(err, &d):
			_ = c.Close(d.Code, d.Reason)
		case err != nil:
			_ = c.Send(wsgate.Text, []byte(err.Error()))
		default:
			_ = c.Send(wsgate.Text, []byte("user "+id.User))
		}
	})
	_, url := wstest.Wsgate(t, h, &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}})

	dial := func(cookie string, subprotocols ...string) *websocket.Conn {
		d := websocket.Dialer{Subprotocols: subprotocols}
		ws, _, err := d.Dial(url, http.Header{"Cookie": {cookie}, "X-Secret-Header": {"not forwarded"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, []byte("connect")); err != nil {
			t.Fatal(err)
		}
		return ws
	}

	ws := dial("sid=alice-session")
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "user alice" {
		t.Fatalf("%q, %v", msg, err)
	}
	c := b.last(t)
	if c.Body["transport"] != "raw" || !strings.HasPrefix(c.Body["remote"].(string), "127.0.0.1:") || c.Body["client"] == "" {
		t.Fatalf("body %v", c.Body)
	}
	if hdrs := c.Body["headers"].(map[string]any); hdrs["Cookie"] != "sid=alice-session" || hdrs["X-Secret-Header"] != nil {
		t.Fatalf("headers %v", hdrs)
	}

	ws = dial("sid=forged", protocol.Subprotocol)
	_, _, err := ws.ReadMessage()
	if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != protocol.CloseUnauthorized {
		t.Fatalf("a forged cookie: %v", err)
	}
	if c := b.last(t); c.Body["transport"] != protocol.Subprotocol {
		t.Fatalf("transport %v", c.Body["transport"])
	}
}
