package wsgate

import (
	"errors"
	"net"
	"os"

	"github.com/wsgate/wsgate/internal/gws"
)

// batch is what one write takes from the connection: the pongs owed to the peer's pings, a
// heartbeat ping, the data messages in order, and the close frame, written in that order.
type batch struct {
	msgs  []outMsg
	pongs [][]byte
	ping  bool
	close []byte
}

// takeLocked moves everything waiting to be written into b, and reports whether there was any.
func (c *Conn) takeLocked(b *batch) bool {
	if c.state == stateClosed || !c.hasWorkLocked() {
		return false
	}
	b.msgs, c.queue, c.spare = c.queue, c.spare[:0], nil
	b.pongs, b.ping, b.close = c.pongs, c.pingDue, c.closeMsg
	c.pongs, c.pingDue, c.closeMsg = nil, false, nil
	return true
}

// doneLocked settles a written batch: its bytes leave the queue's count, its buffers go back to
// their pools, and its slice becomes the spare queue.
func (c *Conn) doneLocked(b *batch) {
	for i := range b.msgs {
		c.queued -= b.msgs[i].size()
		b.msgs[i].release()
	}
	c.spare = b.msgs[:0]
	*b = batch{}
	c.signalSpaceLocked()
}

// writeLoop is the connection's writer goroutine. It writes what an inline write left in the
// stash, then everything queued, batch after batch, each within Config.WriteTimeout, and returns
// when nothing is left (or after the close frame), so that an idle connection has no writer.
func (c *Conn) writeLoop() {
	err := c.wire.flush()
	c.mu.Lock()
	c.queued -= c.stashed
	c.stashed = 0
	c.signalSpaceLocked()
	var b batch
	for err == nil && c.takeLocked(&b) {
		c.mu.Unlock()
		_, err = c.writeBatch(&b, true)
		c.mu.Lock()
		closed := b.close != nil
		c.doneLocked(&b)
		if closed {
			break
		}
	}
	c.writing = false
	if err != nil {
		c.releaseQueueLocked()
	}
	c.mu.Unlock()
	if err != nil {
		c.writeFailed(err)
	}
}

// writeInlineLocked writes what a handler callback queued, on the reader goroutine once it has
// returned, as a raw echo server writes in its read loop: one batch, without blocking, so that
// reading resumes at once. What the socket does not take at once, and anything queued meanwhile,
// goes to a writer goroutine. Called with c.mu held and c.writing unset; returns without c.mu.
func (c *Conn) writeInlineLocked() {
	var b batch
	if !c.takeLocked(&b) {
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.mu.Unlock()
	stashed, err := c.writeBatch(&b, false)
	c.mu.Lock()
	c.doneLocked(&b)
	c.queued += stashed - c.stashed // the stash counts against the queue's bound
	c.stashed = stashed
	switch {
	case err != nil:
		c.writing = false
		c.releaseQueueLocked()
	case (stashed > 0 || c.hasWorkLocked()) && c.state != stateClosed:
		c.spawnWriterLocked()
	default:
		c.writing = false
	}
	c.mu.Unlock()
	if err != nil {
		c.writeFailed(err)
	}
}

// writeBatch writes b, blocking or not (see wire.send), and returns how many bytes wait in the
// stash. With permessage-deflate the transport frames and compresses, always blocking. A sealed
// wire writes nothing (errSealed). Stats().Sent is counted by the wire, under its lock, as each
// message's last byte leaves (wire.countStash): counted here, after the lock, a batch written in
// full could still be missing from the count when the peer's close, answered meanwhile, had
// ended the connection and OnClose had run.
func (c *Conn) writeBatch(b *batch, block bool) (int, error) {
	var stashed int
	var err error
	if c.wire.deflate {
		err = c.writeCompressed(b)
	} else {
		stashed, err = c.wire.send(b, block)
	}
	if h := testHookWritten.Load(); h != nil {
		(*h)(c)
	}
	return stashed, err
}

// writeCompressed writes b through the transport, which compresses data messages at write time;
// wire.Write bounds each frame by Config.WriteTimeout, and counts each message it writes.
func (c *Conn) writeCompressed(b *batch) error {
	for _, p := range b.pongs {
		if err := c.sock.WritePong(p); err != nil {
			return err
		}
	}
	if b.ping {
		if err := c.sock.WritePing(nil); err != nil {
			return err
		}
	}
	for i := range b.msgs {
		if err := c.sock.WriteMessage(gws.Opcode(b.msgs[i].typ), b.msgs[i].payload()); err != nil {
			return err
		}
	}
	if b.close != nil {
		return c.sock.WriteMessage(gws.OpcodeCloseConnection, b.close)
	}
	return nil
}

// maxCork bounds the bytes of small frames gathered into one write.
const maxCork = 64 << 10

// writeFailed ends a connection whose socket could not be written: there is no point in a close
// handshake with a peer that does not read. A write refused because the connection is already
// ending (the peer's close frame, a read error, a socket closed under the write) needs nothing:
// the reader is ending the connection.
func (c *Conn) writeFailed(err error) {
	if errors.Is(err, gws.ErrConnClosed) || errors.Is(err, net.ErrClosed) || errors.Is(err, errSealed) || c.wire.broken.Load() {
		return
	}
	c.mu.Lock()
	if c.closeErr == nil {
		c.closeErr = writeError(err)
	}
	c.mu.Unlock()
	c.CloseNow()
}

// writeError says why a connection whose socket could not be written ended.
func writeError(err error) *CloseError {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &CloseError{Code: CloseAbnormal, Reason: "write timeout", Err: ErrWriteTimeout}
	}
	return &CloseError{Code: CloseAbnormal, Reason: "write failed", Err: err}
}
