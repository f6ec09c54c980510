package main

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestPubSubEndToEnd: the binary speaks wsgate.v1 to clients that ask for it, and stays raw
// (the seed's echo) for the others.
func TestPubSubEndToEnd(t *testing.T) {
	r := startRun(t, "-history-size", "5")
	url := "ws://" + r.addr + "/ws"
	d := websocket.Dialer{Subprotocols: []string{"wsgate.v1"}}
	dialV1 := func() *websocket.Conn {
		ws, _, err := d.Dial(url, nil)
		if err != nil || ws.Subprotocol() != "wsgate.v1" {
			t.Fatalf("dial wsgate.v1: %v (subprotocol %q)", err, ws.Subprotocol())
		}
		t.Cleanup(func() { ws.Close() })
		return ws
	}
	read := func(ws *websocket.Conn, want string) {
		t.Helper()
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := ws.ReadMessage()
		if err != nil || !strings.Contains(string(p), want) {
			t.Fatalf("got %q (%v), want it to contain %q", p, err, want)
		}
	}
	sub, pub := dialV1(), dialV1()
	sub.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"subscribe","channel":"chat"}`))
	read(sub, `"id":1,"result":{"epoch":`)
	pub.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"publish","channel":"chat","data":{"text":"hello"}}`))
	read(pub, `"offset":1}}`)
	read(sub, `"push":"pub","channel":"chat"`)

	raw := dialWS(t, r.addr, "")
	echo(t, raw, websocket.TextMessage, "Hello!")
}
