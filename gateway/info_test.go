package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/gateway"
)

// Info counts the messages of the node's connections, open and closed: the totals never go
// back when a connection closes, so the admin page's rates stay true.
func TestInfoCountsMessages(t *testing.T) {
	s := start(t, &gateway.Config{}, nil)
	info := func() (int, uint64, uint64) {
		t.Helper()
		i, err := s.gw.Node().Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return i.Connections, i.MessagesReceived, i.MessagesSent
	}
	ws := dialRaw(t, s.url, nil)
	for range 3 {
		if err := ws.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := ws.ReadMessage(); err != nil { // the echo, written
			t.Fatal(err)
		}
	}
	// Sent counts a message once the socket took it: maybe just after the peer read it.
	waitInfo := func(what string, wantN int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, recv, sent := info()
			if n == wantN && recv == 3 && sent == 3 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: connections %d, received %d, sent %d; want %d, 3, 3", what, n, recv, sent, wantN)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitInfo("open", 1)
	ws.Close()
	waitInfo("closed", 0)
}
