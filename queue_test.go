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

// TestAfterCloseNowNothingIsQueued: once CloseNow ran, Send and WaitSendQueue say ErrClosed.
func TestAfterCloseNowNothingIsQueued(t *testing.T) {
	got := make(chan [2]error, 1)
	ts := startServer(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		c.CloseNow()
		got <- [2]error{c.Send(wsgate.Text, []byte("late")), c.WaitSendQueue(context.Background(), 1)}
	}), nil)
	ws := dial(t, ts.URL, nil)
	ws.WriteMessage(websocket.TextMessage, []byte("go"))
	if errs := <-got; errs[0] != wsgate.ErrClosed || errs[1] != wsgate.ErrClosed {
		t.Fatalf("after CloseNow: Send %v, WaitSendQueue %v; want ErrClosed for both", errs[0], errs[1])
	}
}

// TestPinnedRefusalEvictsNothing: under PolicyDropOldest, a pinned message that would not fit
// even if everything evictable went is refused without evicting anything for it.
func TestPinnedRefusalEvictsNothing(t *testing.T) {
	type result struct {
		err     error
		dropped uint64
	}
	got := make(chan result, 1)
	ts := startServer(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		// Inside the callback nothing is written yet: the queue holds what is sent here.
		if err := c.SendPinned(wsgate.Binary, make([]byte, 600)); err != nil {
			t.Error(err)
		}
		if err := c.Send(wsgate.Binary, make([]byte, 300)); err != nil {
			t.Error(err)
		}
		err := c.SendPinned(wsgate.Binary, make([]byte, 500))
		got <- result{err, c.Dropped()}
	}), &wsgate.Config{SlowConsumer: wsgate.PolicyDropOldest, SendQueueBytes: 1000, ReadLimit: 100})
	ws := dial(t, ts.URL, nil)
	ws.WriteMessage(websocket.TextMessage, []byte("go"))
	if r := <-got; r.err != wsgate.ErrQueueFull || r.dropped != 0 {
		t.Fatalf("pinned 500 B after pinned 600 B in a 1000 B queue: %v with %d evicted; want ErrQueueFull, 0", r.err, r.dropped)
	}
}
