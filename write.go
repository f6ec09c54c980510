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
	if !inline {
		if err := c.flushStash(); err != nil {
			c.writeFailed(err)
			c.mu.Lock()
			c.writing = false
			c.releaseQueueLocked()
			c.mu.Unlock()
			return
		}
	}
	for first := true; ; first = false {
		c.mu.Lock()
		if inline && !first {
			c.handOffLocked()
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

		if inline {
			c.wire.setInline(true)
		}
		err := c.writeBatch(batch, pong, pongDue, ping, inline)
		if err == nil && closeMsg != nil {
			err = c.sock.WriteMessage(gws.OpcodeCloseConnection, closeMsg)
			if err == nil {
				// The peer has CloseTimeout to answer; the read deadline ends the reader otherwise.
				d := time.Now().Add(c.srv.cfg.CloseTimeout)
				c.closeDeadline.Store(d.UnixNano())
				_ = c.wire.Conn.SetReadDeadline(d)
			}
		}
		stashed := 0
		if inline {
			stashed = c.wire.setInline(false)
		}

		c.mu.Lock()
		for i := range batch {
			c.queued -= len(batch[i].data)
			batch[i].release()
		}
		c.stashed = stashed // still to be written, by the writer goroutine
		c.queued += stashed
		clear(batch)
		c.spare = batch[:0]
		c.mu.Unlock()

		if err != nil {
			c.writeFailed(err)
		}
		if err != nil || closeMsg != nil {
			c.mu.Lock()
			if err == nil && inline {
				c.handOffLocked() // the close frame may sit in the stash
			} else {
				c.writing = false
				c.releaseQueueLocked()
			}
			c.mu.Unlock()
			return
		}
	}
}

// handOffLocked ends an inline write: anything stashed or queued since goes to a writer goroutine,
// so that the reader goes back to reading at once.
func (c *Conn) handOffLocked() {
	if (c.stashed > 0 || c.hasWorkLocked()) && c.state != stateClosed {
		c.spawnWriterLocked()
		return
	}
	c.writing = false
	c.releaseQueueLocked()
}

// flushStash writes, blocking, what inline writes left behind, and what joined it meanwhile; it
// runs first in the writer goroutine, so the stashed bytes keep their place.
func (c *Conn) flushStash() error {
	var err error
	for b := c.wire.takeStash(); len(b) > 0; b = c.wire.takeStash() {
		if err == nil {
			if err = c.wire.Conn.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout)); err == nil {
				_, err = c.wire.Conn.Write(b)
			}
		}
		c.wire.recycle(b)
	}
	c.mu.Lock()
	c.queued -= c.stashed
	c.stashed = 0
	c.mu.Unlock()
	return err
}

// writeBatch writes control frames first, then the data messages, under one write deadline.
// Inline writes never block, so they need no deadline.
func (c *Conn) writeBatch(batch []outMsg, pong []byte, pongDue, ping, inline bool) error {
	if !inline {
		if err := c.wire.Conn.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout)); err != nil {
			return err
		}
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
	// Several small messages leave in one write(2): the frames gather in the stash (a copy, which
	// costs less than a system call per message up to maxCork bytes).
	cork := len(batch) > 1 && batchBytes(batch) <= maxCork
	if cork {
		c.wire.setCork(true)
	}
	var err error
	for i := range batch {
		if err = c.sock.WriteMessage(gws.Opcode(batch[i].typ), batch[i].data); err != nil {
			break
		}
		c.sent.Add(1)
	}
	if cork {
		c.wire.setCork(false)
		if err == nil && inline {
			err = c.wire.pushStash()
		} else if err == nil {
			err = c.flushStash()
		}
	}
	return err
}

// maxCork bounds the bytes of a batch gathered into one write.
const maxCork = 64 << 10

func batchBytes(batch []outMsg) int {
	n := 0
	for i := range batch {
		n += len(batch[i].data)
	}
	return n
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
