package wsgate_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSeedEcho(t *testing.T) {
	ts := startServer(t, echoDone, nil)
	ws := dial(t, ts.URL, nil)
	for _, tc := range []struct {
		typ  int
		data string
	}{{websocket.TextMessage, "Hello!"}, {websocket.BinaryMessage, "\x00\x01bin"}, {websocket.TextMessage, "你好"}} {
		if err := ws.WriteMessage(tc.typ, []byte(tc.data)); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ != tc.typ || string(got) != tc.data+" done" {
			t.Fatalf("got (%d, %q), want (%d, %q)", typ, got, tc.typ, tc.data+" done")
		}
	}
	ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"))
	_, _, err := ws.ReadMessage()
	if !websocket.IsCloseError(err, 1000) {
		t.Fatalf("want close 1000 echoed, got %v", err)
	}
}

func TestConnHeaderKeepsRequestHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	ts := startServer(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) { got <- c.Header() }),
		&wsgate.Config{KeepHeaders: append(wsgate.DefaultKeepHeaders, "X-Trace")})
	ws := dial(t, ts.URL, http.Header{"X-Trace": {"a", "b"}, "Cookie": {"s=1"}})
	ws.WriteMessage(websocket.TextMessage, []byte("x"))
	h := <-got
	if h.Get("Cookie") != "s=1" || len(h.Values("X-Trace")) != 2 || h.Get("Sec-WebSocket-Key") != "" || h.Get("Upgrade") != "" {
		t.Fatalf("Header() = %v", h)
	}
}
