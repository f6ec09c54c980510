package echoserver

import (
	"net/http"
	"sync"
	"time"

	"github.com/lxzan/gws"
)

// GWS is a raw gws echo server, written the way gws's README recommends: Upgrade, then
// `go socket.ReadLoop()`; OnMessage writes the message back with WriteMessage and closes it.
//
// With Options.PingInterval it also keeps heartbeats as a gws user would, gws having none of its
// own: one ticker for the whole server pings every connection each interval, and each connection
// has a read deadline of interval+PongTimeout, pushed back by every frame it reads (the
// SetDeadline idiom of gws's README, server side), so that a silent peer is dropped.
type GWS struct {
	up    *gws.Upgrader
	conns registry[*gws.Conn]
	// ping is the heartbeat's interval (0: none); stop ends its ticker goroutine, done is
	// closed when it has.
	ping time.Duration
	stop chan struct{}
	done chan struct{}
}

// NewGWS returns a raw gws echo server without heartbeats.
func NewGWS() *GWS { return newGWS(Options{}) }

func newGWS(o Options) *GWS {
	s := &GWS{ping: o.PingInterval}
	s.up = gws.NewUpgrader(gwsEcho{s}, &gws.ServerOption{ReadMaxPayloadSize: ReadLimit})
	if s.ping > 0 {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.pingLoop() // owner: s; ends when Close closes s.stop
	}
	return s
}

type gwsEcho struct{ s *GWS }

func (e gwsEcho) OnOpen(c *gws.Conn)           { e.s.alive(c) }
func (e gwsEcho) OnClose(c *gws.Conn, _ error) { e.s.conns.remove(c) }
func (e gwsEcho) OnPing(c *gws.Conn, payload []byte) {
	e.s.alive(c)
	_ = c.WritePong(payload)
}
func (e gwsEcho) OnPong(c *gws.Conn, _ []byte) { e.s.alive(c) }
func (e gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	e.s.alive(c)
	_ = c.WriteMessage(m.Opcode, m.Bytes())
	m.Close()
}

// alive pushes c's read deadline back after a frame, when heartbeats are on.
func (s *GWS) alive(c *gws.Conn) {
	if s.ping > 0 {
		_ = c.SetReadDeadline(time.Now().Add(s.ping + PongTimeout))
	}
}

// pingLoop pings every connection each interval, from one ticker.
func (s *GWS) pingLoop() {
	defer close(s.done)
	t := time.NewTicker(s.ping)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		for _, c := range s.conns.live() {
			_ = c.WritePing(nil)
		}
	}
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
	if s.stop != nil {
		close(s.stop)
		<-s.done
	}
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

// live returns the connections registered now (copied under the lock, used after it).
func (r *registry[C]) live() []C {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := make([]C, 0, len(r.m))
	for c := range r.m {
		live = append(live, c)
	}
	return live
}

// close refuses new connections, ends the live ones with end, and waits for their goroutines.
func (r *registry[C]) close(end func(C)) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	for _, c := range r.live() {
		end(c)
	}
	r.wg.Wait()
}
