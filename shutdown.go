package wsgate

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// shutdownBatch connections are sent their close frame at a time, then shutdownPause passes, so that
// thousands of clients do not all reconnect elsewhere in the same millisecond.
const (
	shutdownBatch = 500
	shutdownPause = 2 * time.Millisecond
)

// ending is the Server's state for its connections' ends and its own: the connections that have
// ended (OnClose has run) but whose sockets linger, draining the peer after a close frame, until
// their close timeout; and whether Close was called.
type ending struct {
	mu        sync.Mutex
	lingering map[*Conn]connTotals // each with its counts folded at unregister
	closed    atomic.Bool
	goneOnce  sync.Once
}

// add records c as lingering, with the counts unregister folded into its shard's totals.
func (e *ending) add(c *Conn, folded connTotals) {
	e.mu.Lock()
	if e.lingering == nil {
		e.lingering = make(map[*Conn]connTotals)
	}
	e.lingering[c] = folded
	e.mu.Unlock()
}

// forget is the last step of a connection, on its reader goroutine: its socket is closed. A
// write still in flight then fails at once, and a later one writes nothing (wire.quiesce); what was counted
// after unregister folded the counters (the rest of a queue written while the connection
// lingered, or by a write in flight when it ended) is folded now, so that it is not lost.
func (s *Server) forget(c *Conn) {
	c.wire.quiesce()
	s.ending.mu.Lock()
	folded, ok := s.ending.lingering[c]
	delete(s.ending.lingering, c)
	s.ending.mu.Unlock()
	if ok {
		late := c.ctr.totals()
		late.minus(folded)
		sh := s.shard(c.id)
		sh.mu.Lock()
		sh.gone.plus(late)
		sh.mu.Unlock()
	}
	s.unreserve(c.addr)
}

// force drops every connection at once: the live ones without a close frame, the lingering ones
// without waiting for the rest of their close timeout.
func (s *Server) force() {
	s.Range(func(c *Conn) bool { c.CloseNow(); return true })
	s.ending.mu.Lock()
	cs := make([]*Conn, 0, len(s.ending.lingering))
	for c := range s.ending.lingering {
		cs = append(cs, c)
	}
	s.ending.mu.Unlock()
	for _, c := range cs {
		c.shut(true)
	}
}

// Shutdown stops accepting connections (new upgrades get 503), closes every connection with 1001
// "server shutting down" after the messages already queued for it are written, and waits for every
// handler to return, every socket to be closed and every connection goroutine to end. If ctx ends
// first, the remaining connections are dropped at once and ctx's error is returned. A second call
// returns ErrServerClosed; Close may be called meanwhile to drop the connections at once.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.closing.Swap(true) {
		return ErrServerClosed
	}
	n := 0
	s.Range(func(c *Conn) bool {
		_ = c.Close(CloseGoingAway, "server shutting down")
		if n++; n%shutdownBatch == 0 {
			time.Sleep(shutdownPause)
		}
		return ctx.Err() == nil
	})
	return s.wait(ctx)
}

// Close stops accepting connections and drops every connection at once, without close
// handshakes, and waits for their handlers. Called during or after Shutdown, it drops what
// Shutdown still waits for. A second call returns ErrServerClosed.
func (s *Server) Close() error {
	s.closing.Store(true)
	if s.ending.closed.Swap(true) {
		return ErrServerClosed
	}
	s.force()
	return s.wait(context.Background())
}

// forcedGrace bounds how long Shutdown still waits for handlers after forcing connections closed
// at its deadline: forced reads fail at once, so only a handler stuck in its own code takes longer.
const forcedGrace = time.Second

// wait waits for every connection to end. If ctx ends first, it forces the rest closed and waits
// up to forcedGrace more for their handlers, then returns ctx's error.
func (s *Server) wait(ctx context.Context) error {
	err := s.drained(ctx)
	if err != nil {
		s.force()
		grace, cancel := context.WithTimeout(context.Background(), forcedGrace)
		defer cancel()
		_ = s.drained(grace)
	}
	s.stopHeartbeat()
	s.stopPoller()
	if s.live.Load() == 0 {
		// Every reader has closed its socket and given back its place, so no goroutine can be
		// added any more; the writers left end at once on their closed sockets.
		s.goroutines.Wait()
	}
	return err
}

// drained waits until no connection is left or ctx ends. s.closing is set, so the release that
// takes s.live to 0 closes s.gone. An upgrade racing the shutdown may still take a place and give
// it back (ServeHTTP) after that: then look again shortly.
func (s *Server) drained(ctx context.Context) error {
	for s.live.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.gone:
			if s.live.Load() > 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	return nil
}
