package wsgate

import (
	"context"
	"time"
)

// shutdownBatch connections are sent their close frame at a time, then shutdownPause passes, so that
// thousands of clients do not all reconnect elsewhere in the same millisecond.
const (
	shutdownBatch = 500
	shutdownPause = 2 * time.Millisecond
)

// Shutdown stops accepting connections (new upgrades get 503), closes every connection with 1001
// "server shutting down" after the messages already queued for it are written, and waits for every
// handler to return and every connection goroutine to end. If ctx ends first, the remaining
// connections are closed at once and ctx's error is returned. A second call returns ErrServerClosed.
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

// Close closes every connection at once, without close handshakes, and waits for their handlers.
func (s *Server) Close() error {
	if s.closing.Swap(true) {
		return ErrServerClosed
	}
	s.Range(func(c *Conn) bool { c.CloseNow(); return true })
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
		s.Range(func(c *Conn) bool { c.CloseNow(); return true })
		grace, cancel := context.WithTimeout(context.Background(), forcedGrace)
		defer cancel()
		_ = s.drained(grace)
	}
	s.stopHeartbeat()
	if s.live.Load() == 0 {
		// Every reader has unregistered, so no goroutine can be added any more; the writers left
		// end at once on their closed sockets.
		s.goroutines.Wait()
	}
	return err
}

// drained waits until no connection is left or ctx ends. s.closing is set, so the release that
// takes s.live to 0 leaves a token in s.gone; a token left from an earlier 0 only makes the loop
// look again.
func (s *Server) drained(ctx context.Context) error {
	for s.live.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.gone:
		}
	}
	return nil
}
