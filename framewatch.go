package wsgate

import (
	"encoding/binary"
	"time"
)

// frameWatch follows the frame boundaries of what the peer sends, as the bytes arrive (wire.Read),
// reading only frame headers: the transport parses the frames; this only counts them. Two rules
// rest on it:
//
//   - liveness comes from complete frames, not from bytes: a peer trickling a frame one byte at a
//     time does not prove itself alive (Config.PingInterval), and, stuck in its frame, cannot
//     answer a ping either;
//   - a message, all its frames and the control frames between them, must arrive within
//     Config.MessageTimeout from its first byte (Conn.msgStart, checked by the heartbeat).
//
// Owned by the connection's reader goroutine.
type frameWatch struct {
	left       uint64   // payload bytes of the current frame still to come
	hdr        [14]byte // the current frame's header, as far as it has come
	have, need uint8    // header bytes received, and the header's length (2 until its 2nd byte)
	inFrame    bool     // a frame has begun and not ended
	fragmented bool     // the message goes on: its last data frame had no FIN
	msgOp      byte     // the opcode (text or binary) of the message the data frames belong to
}

// kind is the connCounters.bytesIn entry of the current frame's bytes (its header known at
// least to its first byte): a continuation frame's is its message's, which kind records when
// the message's first frame passes.
func (w *frameWatch) kind() int {
	switch op := w.hdr[0] & 0x0f; op {
	case opText, opBinary:
		w.msgOp = op
	case opContinuation:
		return bytesKind(w.msgOp) // control if no message began: the transport refuses it
	}
	return bytesKind(w.hdr[0])
}

// observe takes the next bytes received from the peer. It writes msgStart and calls touch at most
// once per read, however many frames the read holds. It returns how many of the bytes belong to
// text, binary and control frames (headers included), to be counted in connCounters.bytesIn.
func (w *frameWatch) observe(c *Conn, p []byte) (typed [3]uint64) {
	done, began := false, false // a frame ended in p; a message (or a control frame between messages) began
	add := func(n int) { typed[w.kind()] += uint64(n) }
	for {
		if !w.inFrame {
			if len(p) == 0 {
				break
			}
			w.inFrame, w.have, w.need = true, 0, 2
			began = began || !w.fragmented
			if len(p) >= len(w.hdr) { // the whole header is here: no need to gather it
				w.need = headerLen(p[1])
				w.hdr[0], w.hdr[1] = p[0], p[1]
				w.left = payloadLen(p)
				add(int(w.need))
				w.need, p = 0, p[w.need:]
			}
		}
		if w.need > 0 {
			k := copy(w.hdr[w.have:w.need], p)
			w.have += uint8(k)
			p = p[k:]
			add(k)
			if w.have == 2 && w.need == 2 {
				w.need = headerLen(w.hdr[1])
			}
			if w.have < w.need {
				if len(p) == 0 {
					break
				}
				continue
			}
			w.need, w.left = 0, payloadLen(w.hdr[:])
		}
		k := min(uint64(len(p)), w.left)
		w.left -= k
		p = p[k:]
		add(int(k))
		if w.left > 0 {
			break
		}
		w.inFrame, done = false, true
		if op := w.hdr[0] & 0x0f; op < opClose { // a data frame: FIN ends its message
			w.fragmented = w.hdr[0]&0x80 == 0
		}
	}
	switch {
	case w.inFrame || w.fragmented: // inside a message: its own if it began in p
		if began {
			c.msgStart.Store(c.srv.clock.Load())
		}
	case c.msgStart.Load() != 0:
		c.msgStart.Store(0)
	}
	if done {
		c.touch()
	}
	return typed
}

// headerLen is the length of a frame header whose second byte is b1 (RFC 6455 §5.2).
func headerLen(b1 byte) uint8 {
	n := uint8(2)
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4 // masking key
	}
	return n
}

// payloadLen is the payload length of a complete frame header.
func payloadLen(h []byte) uint64 {
	switch n := h[1] & 0x7f; n {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		return binary.BigEndian.Uint64(h[2:10])
	default:
		return uint64(n)
	}
}

// checkMessageTime closes c with 1008 when a message has been arriving for longer than
// Config.MessageTimeout. The heartbeat calls it on every tick, with the server clock.
func (c *Conn) checkMessageTime(now int64) {
	limit := c.srv.cfg.MessageTimeout
	start := c.msgStart.Load()
	if limit < 0 || start == 0 || now-start < int64(limit) {
		return
	}
	if c.inHandler.Load() {
		// The reader is in a handler, not reading: that time is ours, not the peer's. The rest of
		// the message gets a whole MessageTimeout once the handler returns. (A swap, not a store:
		// the reader may have ended the message meanwhile.)
		c.msgStart.CompareAndSwap(start, now)
		return
	}
	c.mu.Lock()
	c.closeLocked(&CloseError{Code: ClosePolicyViolation, Reason: "message timeout", Err: ErrMessageTimeout}, true)
	c.mu.Unlock()
}

// messageTimeoutTick is the heartbeat period MessageTimeout needs: a tenth of it, within [5ms, 1s].
func messageTimeoutTick(d time.Duration) time.Duration {
	if d < 0 {
		return time.Second
	}
	return min(max(d/10, 5*time.Millisecond), time.Second)
}
