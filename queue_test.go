package wsgate_test

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
)

// TestWaitSendQueueSlowsAPipeliningPeer: a handler that answers each small request with 100 KB
// and waits for room first: a peer that pipelines 300 requests (30 MB of replies against a 1 MiB
// queue) gets every reply, in order, instead of being cut as a slow consumer.
func TestWaitSendQueueSlowsAPipeliningPeer(t *testing.T) {
	reply := make([]byte, 100<<10)
	ts := startServer(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		ctx, cancel := context.WithTimeout(c.Context(), 5*time.Second)
		defer cancel()
		if err := c.WaitSendQueue(ctx, len(reply)); err != nil {
			t.Errorf("WaitSendQueue: %v", err)
			return
		}
		r := append(reply[:0:0], reply...)
		copy(r, m.Data)
		if err := c.Send(wsgate.Binary, r); err != nil {
			t.Errorf("Send after WaitSendQueue: %v", err)
		}
	}), nil)
	ws := dial(t, ts.URL, nil)
	const n = 300
	go func() { // owner: the test; ends when all are sent or the connection fails
		for i := range n {
			if ws.WriteMessage(websocket.BinaryMessage, []byte{byte(i), byte(i >> 8)}) != nil {
				return
			}
		}
	}()
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := range n {
		_, p, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if len(p) != len(reply) || p[0] != byte(i) || p[1] != byte(i>>8) {
			t.Fatalf("reply %d: %d bytes starting %v", i, len(p), p[:2])
		}
		if i%50 == 0 {
			time.Sleep(20 * time.Millisecond) // a reader slower than the handler
		}
	}
}

// TestWaitSendQueueOnAClosingConnection: a handler that waits for room on a connection that is
// closing gets ErrClosed at once, not at its context's deadline.
func TestWaitSendQueueOnAClosingConnection(t *testing.T) {
	got := make(chan error, 1)
	ts := startServer(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		_ = c.Close(wsgate.CloseNormal, "bye")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got <- c.WaitSendQueue(ctx, 1)
	}), nil)
	ws := dial(t, ts.URL, nil)
	ws.WriteMessage(websocket.TextMessage, []byte("go"))
	if err := <-got; err != wsgate.ErrClosed {
		t.Fatalf("WaitSendQueue: %v, want ErrClosed", err)
	}
}
