package loadgen

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/internal/echoserver"
)

// An idle connection answers the server's WebSocket pings, and counts them: a server with
// heartbeats keeps every connection, and the result says the heartbeats ran.
func TestIdleAnswersPings(t *testing.T) {
	srv, err := echoserver.NewWith("gws", echoserver.Options{PingInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); _ = srv.Close() })
	c := short(ModeIdle, wsURL(hs))
	c.Duration = 400 * time.Millisecond
	r, err := Idle(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Opened != 4 || r.Errors != 0 || r.Pings < 2*4 {
		t.Fatalf("%s", brief(r))
	}
}

// With ProtoCentrifugo each connection sends Centrifugo's connect command first and answers its
// {} pings with {}; Reset ends the connections with a TCP reset.
func TestIdleCentrifugo(t *testing.T) {
	var connects, pongs, resets atomic.Int64
	var wg sync.WaitGroup
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.Close()
		_, frame, err := ws.ReadMessage()
		if err != nil || string(frame) != `{"id":1,"connect":{"name":"wsgate-bench"}}` {
			t.Errorf("first frame %q, %v", frame, err)
			return
		}
		connects.Add(1)
		var wmu sync.Mutex
		write := func(b string) error {
			wmu.Lock()
			defer wmu.Unlock()
			return ws.WriteMessage(websocket.TextMessage, []byte(b))
		}
		_ = write(`{"id":1,"connect":{"client":"c","version":"6.0.0","ping":1,"pong":true}}`)
		done := make(chan struct{})
		defer close(done)
		go func() { // owner: this handler; ends with it
			tick := time.NewTicker(30 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					if write("{}") != nil {
						return
					}
				}
			}
		}()
		for {
			_, frame, err := ws.ReadMessage()
			if err != nil {
				if errors.Is(err, syscall.ECONNRESET) {
					resets.Add(1)
				}
				return
			}
			if string(frame) == "{}" {
				pongs.Add(1)
			}
		}
	}))
	t.Cleanup(func() { hs.Close(); wg.Wait() })
	c := short(ModeIdle, wsURL(hs))
	c.Protocol, c.Reset, c.Duration = ProtoCentrifugo, true, 400*time.Millisecond
	r, err := Idle(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait() // every handler has seen its connection end
	if r.Opened != 4 || r.Errors != 0 || r.Pings < 2*4 || r.Protocol != "centrifugo" {
		t.Fatalf("%s", brief(r))
	}
	if connects.Load() != 4 || pongs.Load() < int64(r.Pings)-4 || resets.Load() != 4 {
		t.Fatalf("server saw %d connects, %d pongs (client answered %d pings), %d resets", connects.Load(), pongs.Load(), r.Pings, resets.Load())
	}
}
