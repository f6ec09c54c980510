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
