package wsgate

import (
	"errors"
	"os"
	"time"

	"github.com/lxzan/gws"
)

// writeLoop is the connection's only writer. It drains everything queued per wake-up: the pong owed
// to the latest ping, a heartbeat ping, the data messages in order, and finally the close frame.
// It returns when nothing is left, so an idle connection has no writer goroutine.
//
// Inline, on the reader goroutine after a handler returned, it writes one batch only and hands
// anything queued since to a writer goroutine, so that reading resumes at once.
func (c *Conn) writeLoop(inline bool) {
	for first := true; ; first = false {
		c.mu.Lock()
		if inline && !first {
			if c.hasWorkLocked() && c.state != stateClosed {
				c.spawnWriterLocked()
			} else {
				c.writing = false
				c.releaseQueueLocked()
			}
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue = c.spare[:0]
		c.spare = nil
		pong, pongDue := c.pong, c.pongDue
		ping := c.pingDue
		closeMsg := c.closeMsg
		c.pong, c.pongDue, c.pingDue = nil, false, false
		if closeMsg != nil {
			c.closeMsg = nil
		}
		if len(batch) == 0 && !pongDue && !ping && closeMsg == nil || c.state == stateClosed {
			c.writing = false
			c.queue, c.spare = batch, c.queue
			c.releaseQueueLocked()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()

		err := c.writeBatch(batch, pong, pongDue, ping)

		c.mu.Lock()
		for i := range batch {
			c.queued -= len(batch[i].data)
			batch[i].release()
		}
		clear(batch)
		c.spare = batch[:0]
		c.mu.Unlock()

		if err == nil && closeMsg != nil {
			err = c.sock.WriteMessage(gws.OpcodeCloseConnection, closeMsg)
			if err == nil {
				// The peer has CloseTimeout to answer; the read deadline ends the reader otherwise.
				d := time.Now().Add(c.srv.cfg.CloseTimeout)
				c.closeDeadline.Store(d.UnixNano())
				_ = c.wire.Conn.SetReadDeadline(d)
			}
		}
		if err != nil {
			c.writeFailed(err)
		}
		if err != nil || closeMsg != nil {
			c.mu.Lock()
			c.writing = false
			c.releaseQueueLocked()
			c.mu.Unlock()
			return
		}
	}
}

// writeBatch writes control frames first, then the data messages, under one write deadline.
func (c *Conn) writeBatch(batch []outMsg, pong []byte, pongDue, ping bool) error {
	if err := c.wire.Conn.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout)); err != nil {
		return err
	}
	if pongDue {
		if err := c.sock.WritePong(pong); err != nil {
			return err
		}
	}
	if ping {
		if err := c.sock.WritePing(nil); err != nil {
			return err
		}
	}
	for i := range batch {
		if err := c.sock.WriteMessage(gws.Opcode(batch[i].typ), batch[i].data); err != nil {
			return err
		}
		c.sent.Add(1)
	}
	return nil
}

// writeFailed ends a connection whose socket could not be written: there is no point in a close
// handshake with a peer that does not read. A write refused because the transport already closed
// (the peer's close frame, a read error) needs nothing: the reader is ending the connection.
func (c *Conn) writeFailed(err error) {
	if errors.Is(err, gws.ErrConnClosed) {
		return
	}
	ce := &CloseError{Code: CloseAbnormal, Reason: "write failed", Err: err}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		ce.Reason, ce.Err = "write timeout", ErrWriteTimeout
	}
	c.mu.Lock()
	if c.closeErr == nil {
		c.closeErr = ce
	}
	c.mu.Unlock()
	c.CloseNow()
}
