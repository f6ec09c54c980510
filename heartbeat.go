package wsgate

import "time"

// Heartbeats run on one ticker per Server, not a goroutine or timer per connection. Each tick
// advances the server clock and pings the connections silent for about PingInterval; the ping arms
// a read deadline PongTimeout ahead, which any complete inbound frame disarms (wire.Read →
// frameWatch → Conn.touch). A peer that completed no frame since time T is disconnected by
// T+PingInterval+PongTimeout at the latest. The same tick closes a connection whose message has
// been arriving for longer than MessageTimeout (Conn.checkMessageTime), and parks the connections
// idle for ParkAfter (Conn.scanPark). A parked connection has no read for a deadline to fail: the
// scanner wakes it when its pong is overdue, and its reader's first read fails at once.

// heartbeatTick is the scan period: a tenth of the shorter interval, within [5ms, 1s].
func heartbeatTick(ping, pong time.Duration) time.Duration {
	d := min(ping, pong) / 10
	if ping < 0 {
		d = time.Second
	}
	return min(max(d, 5*time.Millisecond), time.Second)
}

func (s *Server) startHeartbeat() {
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	if s.hbStarted || s.hbStop == nil { // running, or stopped for good
		return
	}
	s.hbStarted = true
	stop := s.hbStop
	s.goroutines.Add(1)
	go func() { // owner: the Server; stopped by stopHeartbeat
		defer s.goroutines.Done()
		defer close(s.hbDone)
		s.heartbeat(stop)
	}()
}

func (s *Server) stopHeartbeat() {
	s.hbMu.Lock()
	started := s.hbStarted
	if s.hbStop != nil {
		close(s.hbStop)
		s.hbStop = nil
	}
	s.hbMu.Unlock()
	if started {
		<-s.hbDone
	}
}

func (s *Server) heartbeat(stop <-chan struct{}) {
	t := time.NewTicker(s.tick)
	defer t.Stop()
	var buf []*Conn
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			ns := now.UnixNano()
			s.clock.Store(ns)
			if s.cfg.PingInterval < 0 && s.cfg.MessageTimeout < 0 && s.parkAfter < 0 {
				continue
			}
			for i := range s.shards {
				buf = s.shards[i].snapshot(buf[:0])
				for _, c := range buf {
					c.checkMessageTime(ns)
					if s.cfg.PingInterval >= 0 {
						c.heartbeat(ns)
					}
					c.scanPark(ns)
				}
				clear(buf)
			}
		}
	}
}

// heartbeat pings c if it has been silent for about PingInterval and no ping is outstanding.
func (c *Conn) heartbeat(now int64) {
	cfg := &c.srv.cfg
	if c.awaitPong.Load() || now-c.lastRead.Load() < int64(cfg.PingInterval-2*c.srv.tick) {
		return
	}
	c.mu.Lock()
	// A reader busy in a handler reads nothing: that silence is ours, not the peer's.
	if c.state == stateOpen && !c.inHandler.Load() {
		c.pongBy.Store(now + int64(cfg.PongTimeout))
		_ = c.wire.Conn.SetReadDeadline(time.Unix(0, now).Add(cfg.PongTimeout))
		c.awaitPong.Store(true)
		c.pingDue = true
		c.kickLocked()
	}
	c.mu.Unlock()
}
