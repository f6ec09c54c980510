package wsgate_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
)

func TestPreparedMessageFanOut(t *testing.T) {
	if _, err := wsgate.NewPreparedMessage(wsgate.Text, []byte{0xff}); !errors.Is(err, wsgate.ErrInvalidUTF8) {
		t.Fatalf("invalid UTF-8 prepared: %v", err)
	}
	if _, err := wsgate.NewPreparedMessage(9, nil); !errors.Is(err, wsgate.ErrInvalidMessageType) {
		t.Fatalf("bad type prepared: %v", err)
	}
	src := []byte("broadcast")
	pm, err := wsgate.NewPreparedMessage(wsgate.Text, src)
	if err != nil {
		t.Fatal(err)
	}
	src[0] = 'X' // the prepared message owns a copy

	ts := startServer(t, nil, &wsgate.Config{SendQueueBytes: 1 << 10})
	var clients []*websocket.Conn
	for range 5 {
		clients = append(clients, dial(t, ts.URL, nil))
	}
	waitFor(t, 5*time.Second, "5 connections", func() bool { return ts.Stats().Connections == 5 })
	ts.Range(func(c *wsgate.Conn) bool {
		for range 3 {
			if err := c.SendPrepared(pm); err != nil {
				t.Errorf("SendPrepared: %v", err)
			}
		}
		return true
	})
	for i, ws := range clients {
		for range 3 {
			ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			typ, got, err := ws.ReadMessage()
			if err != nil || typ != websocket.TextMessage || string(got) != "broadcast" {
				t.Fatalf("client %d: %d %q %v", i, typ, got, err)
			}
		}
	}
	big, _ := wsgate.NewPreparedMessage(wsgate.Binary, make([]byte, 2<<10))
	ts.Range(func(c *wsgate.Conn) bool {
		if err := c.SendPrepared(big); !errors.Is(err, wsgate.ErrMessageTooLarge) {
			t.Errorf("oversized prepared: %v", err)
		}
		return true
	})
}
