package echoserver

import (
	"net/http"

	"github.com/gorilla/websocket"
)

// Gorilla is a raw gorilla/websocket echo server as the seed would write it: one goroutine per
// connection looping on ReadMessage / WriteMessage, default buffer sizes (the hijacked HTTP
// buffers are reused).
type Gorilla struct {
	up    websocket.Upgrader
	conns registry[*websocket.Conn]
}

// NewGorilla returns a raw gorilla/websocket echo server.
func NewGorilla() *Gorilla {
	return &Gorilla{up: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}}
}

func (s *Gorilla) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	if !s.conns.add(c) {
		_ = c.Close()
		return
	}
	c.SetReadLimit(ReadLimit)
	go func() { // owner: s; ends when the connection does, waited for by Close
		defer s.conns.done()
		defer s.conns.remove(c)
		defer c.Close()
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, p); err != nil {
				return
			}
		}
	}()
}

// Close implements Server.
func (s *Gorilla) Close() error {
	s.conns.close(func(c *websocket.Conn) { _ = c.Close() })
	return nil
}
