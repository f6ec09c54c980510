package hub_test

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/hub"
)

// TestIdleConnectionCost measures, from outside, the heap the hub adds to an idle connection: n
// wsgate.v1 connections against n raw ones on the same server (the clients, in this process,
// cost the same on both sides). The figure is tracked: the request limiter and the identity's
// deadline live in it.
func TestIdleConnectionCost(t *testing.T) {
	const n = 1000
	// The hub's cost is the same whether idle connections park or keep their reader: keep the
	// readers, so that none parks between two readings and moves the baseline.
	e := start(t, &hub.Options{PingInterval: -1}, &wsgate.Config{ParkAfter: -1})
	dialN := func(protos []string, n int) []*websocket.Conn {
		out := make([]*websocket.Conn, n)
		for i := range out {
			d := websocket.Dialer{Subprotocols: protos}
			ws, _, err := d.Dial(e.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = ws
		}
		return out
	}
	closeAll := func(wss []*websocket.Conn) {
		for _, ws := range wss {
			ws.Close()
		}
	}
	waitConns := func(want int) {
		waitFor(t, "connections", 5*time.Second, func() bool {
			got := 0
			e.srv.Range(func(*wsgate.Conn) bool { got++; return true })
			return got == want
		})
	}
	closeAll(dialN(nil, n/4)) // warm the pools up
	closeAll(dialN([]string{"wsgate.v1"}, n/4))
	waitConns(0)
	base := heapBytes()
	raw := dialN(nil, n)
	waitConns(n)
	mid := heapBytes()
	v1 := dialN([]string{"wsgate.v1"}, n)
	waitConns(2 * n)
	v1Cost, rawCost := heapBytes()-mid, mid-base
	closeAll(raw)
	closeAll(v1)
	per := (v1Cost - rawCost) / n
	t.Logf("heap per idle connection: %d B raw (server and client), %d B more as wsgate.v1", rawCost/n, per)
	bound := int64(2048) // ~390 B with pooled buffers flushed (two GCs); 1,474-1,570 B were measured with them counted
	if raceEnabled {
		bound *= 2
	}
	if per > bound {
		t.Fatalf("the hub holds %d B per idle wsgate.v1 connection, over %d", per, bound)
	}
}
