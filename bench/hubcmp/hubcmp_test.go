// Package hubcmp_test holds the hub's benchmarks that compare two checkouts: they use only the
// public API of wsgate, hub and broker/memory as it stood before issue 9, so that this folder can be
// copied into an older checkout and run there beside this one:
//
//	cp -r bench/hubcmp /tmp/base/bench/
//	go test -run '^$' -bench . -benchtime 300x ./bench/hubcmp                # this checkout
//	(cd /tmp/base && go test -run '^$' -bench . -benchtime 300x ./bench/hubcmp) # the other
//
// Keep -benchtime small (300x): a request beyond the connection's rate (1000 a second, bursts of
// 1000) is answered 203, and the benchmark stops there rather than time refusals.
package hubcmp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// serve starts a hub on the memory broker behind a wsgate server and returns the hub and its URL.
func serve(b *testing.B) (*hub.Hub, string) {
	b.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(context.Background(), memory.New(nil), &hub.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := wsgate.NewServer(h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	b.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
		_ = h.Close(context.Background())
	})
	return h, "ws" + strings.TrimPrefix(hs.URL, "http")
}

// dial connects a wsgate.v1 client.
func dial(b *testing.B, url string) *websocket.Conn {
	b.Helper()
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ws.Close() })
	return ws
}

// subscribers connects n clients to channel (with presence pushes if events) whose frames are read
// and discarded.
func subscribers(b *testing.B, url string, n int, channel string, events bool) {
	b.Helper()
	for range n {
		ws := dial(b, url)
		_ = ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"id":1,"op":"subscribe","channel":%q,"presence":%v}`, channel, events))
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
			h, url := serve(b)
			subscribers(b, url, n, "fan", false)
			data := []byte(`{"text":"` + strings.Repeat("x", 100) + `"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := h.Publish(context.Background(), "fan", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPresenceChurn: one connection subscribing and unsubscribing (a round trip each) on a
// channel whose n subscribers asked for presence pushes. Gathered per interval, a join or leave
// costs the same whatever n; sent one by one (before issue 9), n pushes each.
func BenchmarkPresenceChurn(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("%dWatchers", n), func(b *testing.B) {
			_, url := serve(b)
			subscribers(b, url, n, "room", true)
			c := dial(b, url)
			id := 0
			call := func(op string) {
				id++
				_ = c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"id":%d,"op":%q,"channel":"room"}`, id, op))
				for {
					_, p, err := c.ReadMessage()
					if err != nil {
						b.Fatal(err)
					}
					if !strings.Contains(string(p), fmt.Sprintf(`"id":%d,`, id)) {
						continue // a push
					}
					if strings.Contains(string(p), `"error"`) {
						b.Fatalf("%s refused: %s", op, p)
					}
					return
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				call("subscribe")
				call("unsubscribe")
			}
		})
	}
}
