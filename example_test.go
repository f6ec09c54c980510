package wsgate_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
)

// The seed's server: every message is answered with "<msg> done", in the frame type received.
func Example() {
	srv, err := wsgate.NewServer(wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		_ = c.Send(m.Type, append(m.Data, " done"...))
	}), nil)
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	_ = ws.WriteMessage(websocket.TextMessage, []byte("Hello!"))
	_, reply, _ := ws.ReadMessage()
	fmt.Println(string(reply))
	// Output: Hello! done
}

// A Handler with all three callbacks; OnClose learns why the connection ended.
type chatHandler struct{ closed chan error }

func (chatHandler) OnOpen(c *wsgate.Conn) { _ = c.Send(wsgate.Text, []byte("welcome")) }
func (chatHandler) OnMessage(c *wsgate.Conn, m wsgate.Message) {
	if string(m.Data) == "bye" {
		_ = c.Close(wsgate.CloseNormal, "see you")
	}
}
func (h chatHandler) OnClose(c *wsgate.Conn, err error) { h.closed <- err }

func ExampleHandler() {
	h := chatHandler{closed: make(chan error, 1)}
	srv, _ := wsgate.NewServer(h, &wsgate.Config{AllowedOrigins: []string{"*.example.com"}})
	hs := httptest.NewServer(srv)
	defer hs.Close()

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	_, welcome, _ := ws.ReadMessage()
	fmt.Println(string(welcome))
	_ = ws.WriteMessage(websocket.TextMessage, []byte("bye"))
	_, _, err = ws.ReadMessage() // gorilla answers the close frame here
	fmt.Println(err)
	ws.Close()
	fmt.Println("server saw", <-h.closed)
	_ = srv.Shutdown(context.Background())
	// Output:
	// welcome
	// websocket: close 1000 (normal): see you
	// server saw wsgate: closed with 1000 "see you"
}

// A handler that answers each request with a large reply waits for room in the send queue first:
// a peer that sends requests faster than it reads the replies is slowed down by TCP, not cut as a
// slow consumer. The reply is pinned, so PolicyDropOldest never evicts it.
func ExampleConn_WaitSendQueue() {
	report := make([]byte, 512<<10) // what each request is answered with
	srv, _ := wsgate.NewServer(wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		ctx, cancel := context.WithTimeout(c.Context(), 5*time.Second)
		defer cancel()
		if err := c.WaitSendQueue(ctx, len(report)); err != nil {
			_ = c.Close(wsgate.CloseTryAgainLater, "reply could not be queued")
			return
		}
		_ = c.SendPinned(wsgate.Binary, report)
	}), nil)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	for range 20 { // 10 MiB of replies asked for at once, against a 1 MiB queue
		_ = ws.WriteMessage(websocket.TextMessage, []byte("report?"))
	}
	total := 0
	for range 20 {
		_, p, err := ws.ReadMessage()
		if err != nil {
			panic(err)
		}
		total += len(p)
	}
	fmt.Printf("%d replies, %d MiB\n", total/len(report), total>>20)
	// Output: 20 replies, 10 MiB
}
