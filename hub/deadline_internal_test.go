package hub

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/protocol"
)

// TestRefreshBetweenTakeAndAct: a deadline the loop has taken off the heap, and that a refresh
// moved before the loop acts on it, does nothing (the window is too short for a test through
// sockets to hit: this one drives the two halves itself). The same deadline, not moved, closes.
func TestRefreshBetweenTakeAndAct(t *testing.T) {
	connect := func(context.Context, *wsgate.Conn, string) (*Identity, error) {
		return &Identity{User: "u", ExpiresAt: time.Now().Add(time.Hour)}, nil // the loop leaves it alone
	}
	h, url := serveHub(t, memory.New(nil), &Options{Connect: connect})
	dial := func() (*websocket.Conn, *client) {
		d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
		ws, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		syncCall(t, ws, 1, "connect", "")
		var cl *client
		for _, c := range h.clients.snapshot(nil) {
			if c.conn.RemoteAddr().String() == ws.LocalAddr().String() {
				cl = c
			}
		}
		return ws, cl
	}
	later := time.Now().Add(2 * time.Hour)
	for _, moved := range []bool{true, false} {
		ws, cl := dial()
		cl.mu.Lock()
		h.dl.schedule(cl, later.Add(-time.Minute), deadlineGrace) // over at later, which the loop does not reach
		cl.mu.Unlock()
		dues, _ := h.dl.pop(later, nil)
		var mine []due
		for _, d := range dues {
			if d.cl == cl {
				mine = append(mine, d)
			}
		}
		if len(mine) != 1 {
			t.Fatalf("took %d deadlines of the connection", len(mine))
		}
		if moved { // a refresh lands between the take and the act
			cl.mu.Lock()
			h.dl.schedule(cl, later, deadlineExpiry)
			cl.mu.Unlock()
		}
		h.actOn(mine, later)
		if moved {
			syncCall(t, ws, 2, "ping", "") // still open
			continue
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				if !websocket.IsCloseError(err, protocol.CloseTokenExpired) {
					t.Fatalf("closed with %v, want %d", err, protocol.CloseTokenExpired)
				}
				break
			}
		}
	}
}
