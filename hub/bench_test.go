package hub_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// sink connects n wsgate.v1 clients subscribed to channel (with presence pushes if events) whose
// frames are read and discarded.
func sink(b *testing.B, e *env, n int, channel string, events bool) {
	b.Helper()
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	for range n {
		ws, _, err := d.Dial(e.url, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ws.Close() })
		ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":%q,"presence":%v}`, channel, events)))
		if _, _, err := ws.ReadMessage(); err != nil {
			b.Fatal(err)
		}
		go func() { // owner: the benchmark; ends when its cleanup closes the socket
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
}

// BenchmarkPublish: one server-side publication fanned out to n subscribers over loopback
// (encode once, queue the same frame n times).
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("%dSubs", n), func(b *testing.B) {
			e := startOn(b, memory.New(nil), &hub.Options{}, nil)
			sink(b, e, n, "fan", false)
			data := []byte(`{"text":"` + strings.Repeat("x", 100) + `"}`)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := e.hub.Publish(ctx, "fan", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPresenceChurn: one connection subscribing and unsubscribing (one round trip each) on a
// channel whose n subscribers asked for presence pushes. Gathered per interval, the cost of a
// join or leave does not grow with n (it did, by n pushes each).
func BenchmarkPresenceChurn(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("%dWatchers", n), func(b *testing.B) {
			e := startOn(b, memory.New(nil), &hub.Options{RequestRate: -1}, nil)
			sink(b, e, n, "room", true)
			c := e.dial(b)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c.call("subscribe", `,"channel":"room"`, nil)
				c.call("unsubscribe", `,"channel":"room"`, nil)
			}
		})
	}
}

// BenchmarkHistoryBig: a history request for 100 publications of 60 KB, answered with one page
// that fits the reply budget (it encoded 6 MB to drop it, before).
func BenchmarkHistoryBig(b *testing.B) {
	e := startOn(b, memory.New(nil), &hub.Options{RequestRate: -1}, nil)
	data := []byte(`"` + strings.Repeat("y", 60<<10) + `"`)
	for range 100 {
		if _, err := e.hub.Publish(context.Background(), "big", data); err != nil {
			b.Fatal(err)
		}
	}
	c := e.dial(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.call("history", `,"channel":"big","limit":100`, nil)
	}
}
