package wsgate_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

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
