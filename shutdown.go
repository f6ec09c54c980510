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

// wait stops the heartbeat once no connection is left, or forces every connection closed when ctx ends.
func (s *Server) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { // owner: this call; ends when the connections have
		for s.live.Load() > 0 {
			select {
			case <-ctx.Done():
				close(done)
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		s.stopHeartbeat()
		s.goroutines.Wait()
		close(done)
	}()
	<-done
	if err := ctx.Err(); err != nil {
		s.Range(func(c *Conn) bool { c.CloseNow(); return true })
		s.stopHeartbeat()
		return err
	}
	return nil
}
