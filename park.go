package wsgate

import (
	"errors"
	"time"

	"github.com/wsgate/wsgate/internal/gws"
)

// Parked connections (docs/RUNTIME.md). A plain TCP connection on Linux that has completed no
// frame for Config.ParkAfter gives back its reader goroutine and its read buffer and waits on the
// Server's epoll instance (park_linux.go) until the peer sends again:
//
//   - the heartbeat scanner, which visits every connection each tick, asks an idle reader to park
//     (scanPark): parkReq, and a read deadline in the past;
//   - the reader's read fails on that deadline; at a frame boundary (stopReading) the wire turns it
//     into gws.ErrReadPaused, and the transport's read loop returns, paused, its bufio.Reader back in
//     the pool; the reader registers the socket with the poller (parkSelf) and ends;
//   - when the socket becomes readable (bytes, FIN, reset), or the connection is closed, or its
//     pong is overdue, unpark starts a reader again, which resumes the transport's read loop with
//     a pooled buffer, without a second OnOpen.
//
// c.park says who owns reading: parkReading (a reader goroutine runs, or is about to), parkStopping
// (the reader is on its way out to park), parkParked (no reader; whoever wins the CAS from
// parkParked starts the next). So there is never more than one reader, and handlers keep their
// order.
const (
	parkReading uint32 = iota
	parkStopping
	parkParked
)

// parkAfterOf is Config.ParkAfter in server-clock nanoseconds, rounded up to the heartbeat's
// tick, which notices idleness; -1 never parks.
func parkAfterOf(d, tick time.Duration) int64 {
	if d < 0 || !parkSupported {
		return -1
	}
	return int64((d + tick - 1) / tick * tick)
}

// parkable reports whether c may park: a plain TCP socket (raw is nil under TLS, whose record
// layer buffers what the kernel has handed over, so readiness would say nothing), on a Server
// that parks.
func (c *Conn) parkable() bool { return c.srv.parkAfter >= 0 && c.wire.raw != nil }

// aLongTimeAgo is a read deadline that has passed: a blocked read returns at once.
var aLongTimeAgo = time.Unix(1, 0)

// scanPark is the heartbeat scanner's part in parking, on every tick: it asks an idle reader to
// park, and wakes a parked connection whose pong is overdue, whose read then fails on its passed
// deadline: the pong timeout of a reading connection.
func (c *Conn) scanPark(now int64) {
	if !c.parkable() {
		return
	}
	switch c.park.Load() {
	case parkParked:
		if c.awaitPong.Load() && now >= c.pongBy.Load() {
			c.unpark()
		}
		return
	case parkStopping:
		return
	}
	// lastRead and woke are the clock of the last tick before the event, which may have come
	// just before this tick: only a tick more than parkAfter makes parkAfter of real silence
	// (compared with half a tick to spare, for a ticker that fires late or early). Without it, a
	// busy connection was parked at every tick whose scan came before its next frame.
	// While woken connections wait for a reader (readers.go), any reader between messages is
	// asked, silent or not: the readers go round.
	idle := now - max(c.lastRead.Load(), c.woke.Load())
	// A connection whose pong is overdue is not parked: it is about to end on its deadline (and
	// parked, the scan would wake it again, and the queue could delay that over and over).
	busy := idle < c.srv.parkAfter+int64(c.srv.tick)/2 && c.srv.readers.waiting.Load() == 0
	overdue := c.awaitPong.Load() && now >= c.pongBy.Load()
	if busy || overdue || c.msgStart.Load() != 0 || c.inHandler.Load() || c.closing.Load() {
		return
	}
	c.mu.Lock()
	if !c.inHandler.Load() {
		c.askParkLocked()
	}
	c.mu.Unlock()
}

// stopReading decides, on the reader, what a read that failed on its deadline means: the park the
// scanner asked for (park), a park refused because the reader is not at a frame boundary or the
// connection is closing (again: the deadline is restored, the pong's or none, and reading goes
// on), or a real timeout (neither).
func (c *Conn) stopReading() (park, again bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.parkReq {
		return false, false
	}
	c.parkReq = false
	in := &c.inbound
	if c.state == stateOpen && !in.inFrame && !in.fragmented && len(c.wire.pre) == 0 && !c.srv.pollerStopped() {
		c.park.Store(parkStopping)
		return true, false
	}
	if c.awaitPong.Load() && time.Now().UnixNano() >= c.pongBy.Load() {
		return false, false // the pong is overdue: a real timeout
	}
	c.restoreDeadlineLocked()
	return false, true
}

// parkAfterHeartbeat parks again, at once, a connection that the poller woke for a heartbeat: a
// pong (or a ping) read since the wake-up, and no message. Heartbeats are not activity: without
// this, every ping round would hold a reader and its buffer for ParkAfter on every idle
// connection (at a 5 s PingInterval, a fifth to two fifths of them). Called by the reader after
// the control frame; the park is asked for as the scanner asks it, and happens at the next frame
// boundary, or is refused as usual when more of a frame has arrived.
func (c *Conn) parkAfterHeartbeat() {
	if !c.heartbeatOnly || !c.parkable() {
		return
	}
	c.mu.Lock()
	c.askParkLocked()
	c.mu.Unlock()
}

// askParkLocked asks the reader of an open connection to park at its next frame boundary:
// parkReq, and a read deadline in the past that fails its read (stopReading decides). Under mu.
func (c *Conn) askParkLocked() {
	if c.state == stateOpen && c.park.Load() == parkReading {
		c.parkReq = true
		_ = c.wire.Conn.SetReadDeadline(aLongTimeAgo)
	}
}

// keepAwake withdraws a park that a heartbeat asked for (parkAfterHeartbeat), when a message
// follows it in the same read: the connection is busy after all, and stays until ParkAfter.
func (c *Conn) keepAwake() {
	c.mu.Lock()
	if c.parkReq {
		c.parkReq = false
		c.restoreDeadlineLocked()
	}
	c.mu.Unlock()
}

// errParked is what wire.Read returns to stop the transport's read loop at a frame boundary.
var errParked = gws.ErrReadPaused

// serve is the connection's first reader goroutine: the transport's read loop, from OnOpen until
// the connection parks or ends.
func (c *Conn) serve() {
	c.heartbeatOnly = true
	c.afterRead(c.read(c.sock.ReadLoopPausable))
}

// resume is the work of a pooled reader (readers.go) for a connection unpark woke: it reads on
// from the frame boundary where the last reader parked, until the connection parks again
// (parked true) or ends (false: then the caller, no longer counted as a reader, finishes it).
func (c *Conn) resume(waited bool) bool {
	c.srv.wakeups.Add(1)
	c.woke.Store(c.srv.clock.Load())
	c.heartbeatOnly = true
	c.pooled = true // from now on every reader of c is pooled; never cleared, as the next may have begun
	c.clearPark()
	if waited {
		c.spareQueuedPong()
	}
	return c.readOn(c.read(c.sock.ResumeReadLoop))
}

// spareQueuedPong gives a connection that waited for a reader a tick past its pong's deadline,
// if that passed while it waited: the peer may well have answered in time (its pong is what woke
// the connection, and waits in the socket), and the time in the queue was the server's, not the
// peer's. Without it, the first read failed on the passed deadline before reading the pong, and
// the connection ended as a pong timeout. A peer that did not answer ends a tick later.
func (c *Conn) spareQueuedPong() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.awaitPong.Load() {
		return
	}
	if grace := time.Now().Add(c.srv.tick); time.Unix(0, c.pongBy.Load()).Before(grace) {
		_ = c.wire.Conn.SetReadDeadline(grace)
	}
}

// clearPark clears what a park left, the deadline in the past, and restores the pong's if a ping
// was sent meanwhile, before reading on from the frame boundary where the reader paused. Without
// it the next read would fail on the stale deadline, and read as a pong timeout.
func (c *Conn) clearPark() {
	c.mu.Lock()
	c.parkReq = false
	c.restoreDeadlineLocked()
	c.mu.Unlock()
}

// restoreDeadlineLocked sets the read deadline a reading connection has: the pong's while a ping
// is outstanding, none otherwise.
func (c *Conn) restoreDeadlineLocked() {
	if c.awaitPong.Load() {
		_ = c.wire.Conn.SetReadDeadline(time.Unix(0, c.pongBy.Load()))
	} else {
		_ = c.wire.Conn.SetReadDeadline(time.Time{})
	}
}

// read runs the transport's read loop f; a panic in it ends the connection (recoverTransport).
func (c *Conn) read(f func() bool) (paused bool) {
	defer c.recoverTransport()
	return f()
}

// afterRead follows the transport's read loop on a connection's first reader: readOn, then end.
func (c *Conn) afterRead(paused bool) {
	if !c.readOn(paused) {
		c.end()
	}
}

// readOn follows the transport's read loop: a paused loop parks the connection (true), or, if it
// cannot, reads on; false once the loop has ended.
func (c *Conn) readOn(paused bool) (parked bool) {
	for paused {
		if c.parkSelf() {
			return true // the reader is done here; unpark starts the next
		}
		c.clearPark() // refused, or closing: this goroutine stays the reader
		paused = c.read(c.sock.ResumeReadLoop)
	}
	return false
}

// end finishes a connection whose read loop has ended: it lingers, closes the socket, and gives
// back its place.
func (c *Conn) end() {
	c.srv.unwatch(c)
	c.wire.linger(c.srv.cfg.CloseTimeout)
	c.srv.forget(c)
}

// parkSelf hands the connection, at a frame boundary and with the transport's buffer given
// back, to the poller. It returns false if the connection must be read on by this goroutine:
// the poller refused it, or it began closing meanwhile (a close that found it not yet parked
// cannot wake it).
func (c *Conn) parkSelf() bool {
	c.srv.parked.Add(1)
	c.park.Store(parkParked)
	err := c.srv.watch(c)
	if err == nil && !c.closing.Load() {
		return true
	}
	if err != nil && !errors.Is(err, errPollerStopped) {
		// The connection keeps its reader, as without parking. Said once at Warn (the file
		// table or fs.epoll.max_user_watches is full: docs/TUNING.md), then at Debug.
		if c.srv.parkFailed.CompareAndSwap(false, true) {
			c.srv.cfg.Logger.Warn("wsgate: cannot park idle connections; they keep their reader", "conn", c.id, "err", err)
		} else {
			c.srv.cfg.Logger.Debug("wsgate: cannot park", "conn", c.id, "err", err)
		}
	}
	if c.park.CompareAndSwap(parkParked, parkReading) {
		c.srv.parked.Add(-1)
		return false
	}
	return true // woken already: another reader has started
}

// unpark starts a reader for c if it is parked, and reports whether it did. The poller calls it
// when c's socket is readable; a close, CloseNow or the transport closing the socket call it,
// since a closed socket leaves epoll without an event; the scanner calls it for an overdue pong.
func (c *Conn) unpark() bool {
	if c.park.Load() != parkParked || !c.park.CompareAndSwap(parkParked, parkReading) {
		return false
	}
	c.srv.parked.Add(-1)
	c.srv.startReader(c)
	return true
}
