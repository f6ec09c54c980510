package hub

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/protocol"
)

// client.dlSeq changes under both mu and Hub.dl.mu (client.go), and actOn reads it under the
// client's mu only: the close's removal of the deadline (dropDeadline) racing a due deadline
// must take both, or -race reports it (found by review).
func TestCloseRacingADueDeadline(t *testing.T) {
	connect := func(context.Context, *wsgate.Conn, string) (*Identity, error) {
		return &Identity{User: "u", ExpiresAt: time.Now().Add(time.Hour)}, nil
	}
	h, url := serveHub(t, memory.New(nil), &Options{Connect: connect})
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	syncCall(t, ws, 1, "connect", "")
	var cl *client
	for _, c := range h.clients.snapshot(nil) {
		if c.conn.RemoteAddr().String() == ws.LocalAddr().String() {
			cl = c
		}
	}
	cl.mu.Lock()
	seq := cl.dlSeq + 100 // never the client's: actOn only reads
	cl.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); h.actOn([]due{{cl: cl, kind: deadlineGrace, seq: seq}}, time.Now()) }()
	go func() { defer wg.Done(); h.dropDeadline(cl) }() // as handler.OnClose does
	wg.Wait()
}
