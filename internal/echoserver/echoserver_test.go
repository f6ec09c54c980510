package echoserver_test

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/echoserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestEcho checks that every server echoes each message unchanged and in its frame type, up to the
// common read limit, and that Close ends its connections and goroutines.
func TestEcho(t *testing.T) {
	for _, impl := range echoserver.Impls {
		t.Run(impl, func(t *testing.T) {
			srv, err := echoserver.New(impl)
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			for _, tc := range []struct {
				typ  int
				data []byte
			}{
				{websocket.TextMessage, []byte("hello")},
				{websocket.BinaryMessage, []byte{0, 1, 2, 0xff}},
				{websocket.BinaryMessage, bytes.Repeat([]byte{7}, 64<<10)},
				{websocket.TextMessage, bytes.Repeat([]byte("é"), echoserver.ReadLimit/2)},
			} {
				if err := ws.WriteMessage(tc.typ, tc.data); err != nil {
					t.Fatal(err)
				}
				typ, got, err := ws.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				if typ != tc.typ || !bytes.Equal(got, tc.data) {
					t.Fatalf("echo of %d bytes type %d: got %d bytes type %d", len(tc.data), tc.typ, len(got), typ)
				}
			}
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := ws.ReadMessage(); err == nil {
				t.Fatal("connection still open after Close")
			}
		})
	}
	if _, err := echoserver.New("nope"); err == nil {
		t.Fatal("New accepted an unknown implementation")
	}
}

// With Options.PingInterval every server that has heartbeats pings an idle connection at that
// pace, and a peer that answers stays connected; gorilla, which has none, refuses the option.
func TestPingInterval(t *testing.T) {
	const interval = 100 * time.Millisecond
	for _, impl := range []string{"gws", "wsgate", "wsgate-goroutine"} {
		t.Run(impl, func(t *testing.T) {
			srv, err := echoserver.NewWith(impl, echoserver.Options{PingInterval: interval})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			defer srv.Close()
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			pings := make(chan struct{}, 100)
			ws.SetPingHandler(func(data string) error {
				pings <- struct{}{}
				return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			})
			echoed := make(chan string, 1)
			go func() { // answers pings until the echo comes or the connection ends
				_, p, _ := ws.ReadMessage()
				echoed <- string(p)
			}()
			for i := range 3 {
				select {
				case <-pings:
				case <-time.After(5 * time.Second):
					t.Fatalf("ping %d did not come", i+1)
				}
			}
			// Still connected: an echo comes back.
			if err := ws.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
				t.Fatal(err)
			}
			if got := <-echoed; got != "still here" {
				t.Fatalf("echo %q after the pings", got)
			}
		})
	}
	if _, err := echoserver.NewWith("gorilla", echoserver.Options{PingInterval: interval}); err == nil {
		t.Error("gorilla accepted a ping interval")
	}
}
