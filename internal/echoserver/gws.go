package echoserver

import (
	"net/http"
	"sync"

	"github.com/lxzan/gws"
)

// GWS is a raw gws echo server, written the way gws's README recommends: Upgrade, then
// `go socket.ReadLoop()`; OnMessage writes the message back with WriteMessage and closes it.
type GWS struct {
	up    *gws.Upgrader
	conns registry[*gws.Conn]
}

// NewGWS returns a raw gws echo server.
func NewGWS() *GWS {
	s := &GWS{}
	s.up = gws.NewUpgrader(gwsEcho{s}, &gws.ServerOption{ReadMaxPayloadSize: ReadLimit})
	return s
}

type gwsEcho struct{ s *GWS }

func (gwsEcho) OnOpen(*gws.Conn)                   {}
func (e gwsEcho) OnClose(c *gws.Conn, _ error)     { e.s.conns.remove(c) }
func (gwsEcho) OnPing(c *gws.Conn, payload []byte) { _ = c.WritePong(payload) }
func (gwsEcho) OnPong(*gws.Conn, []byte)           {}
func (gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	_ = c.WriteMessage(m.Opcode, m.Bytes())
	m.Close()
}

func (s *GWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := s.up.Upgrade(w, r)
	if err != nil {
		return
	}
	if !s.conns.add(c) {
		_ = c.NetConn().Close()
		return
	}
	go func() { // owner: s; ends when the connection does, waited for by Close
		defer s.conns.done()
		c.ReadLoop()
	}()
}

// Close implements Server.
func (s *GWS) Close() error {
	s.conns.close(func(c *gws.Conn) { _ = c.NetConn().Close() })
	return nil
}

// registry tracks live connections and the goroutines serving them, so Close can end both.
type registry[C comparable] struct {
	mu     sync.Mutex
	m      map[C]struct{}
	closed bool
	wg     sync.WaitGroup
}

// add registers c and counts one goroutine for it; false after close.
func (r *registry[C]) add(c C) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if r.m == nil {
		r.m = make(map[C]struct{})
	}
	r.m[c] = struct{}{}
	r.wg.Add(1)
	return true
}

func (r *registry[C]) remove(c C) {
	r.mu.Lock()
	delete(r.m, c)
	r.mu.Unlock()
}

func (r *registry[C]) done() { r.wg.Done() }

// close refuses new connections, ends the live ones with end, and waits for their goroutines.
func (r *registry[C]) close(end func(C)) {
	r.mu.Lock()
	r.closed = true
	live := make([]C, 0, len(r.m))
	for c := range r.m {
		live = append(live, c)
	}
	r.mu.Unlock()
	for _, c := range live {
		end(c)
	}
	r.wg.Wait()
}
