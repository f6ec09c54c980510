package wsgate

import "encoding/binary"

// frameWatch follows the frame boundaries of what the peer sends, as the bytes arrive (wire.Read),
// reading only frame headers: the transport parses the frames; this only counts them. Liveness
// comes from complete frames, not from bytes: a peer trickling a frame one byte at a time does not
// prove itself alive (Config.PingInterval), and, stuck in its frame, cannot answer a ping either.
//
// Owned by the connection's reader goroutine.
type frameWatch struct {
	left       uint64   // payload bytes of the current frame still to come
	hdr        [14]byte // the current frame's header, as far as it has come
	have, need uint8    // header bytes received, and the header's length (2 until its 2nd byte)
	inFrame    bool     // a frame has begun and not ended
	fragmented bool     // the message goes on: its last data frame had no FIN
}

// observe takes the next bytes received from the peer. It calls touch at most once per read,
// however many frames the read holds.
func (w *frameWatch) observe(c *Conn, p []byte) {
	done := false // a frame ended in p
	for {
		if !w.inFrame {
			if len(p) == 0 {
				break
			}
			w.inFrame, w.have, w.need = true, 0, 2
			if len(p) >= len(w.hdr) { // the whole header is here: no need to gather it
				w.need = headerLen(p[1])
				w.hdr[0], w.hdr[1] = p[0], p[1]
				w.left = payloadLen(p)
				w.need, p = 0, p[w.need:]
			}
		}
		if w.need > 0 {
			k := copy(w.hdr[w.have:w.need], p)
			w.have += uint8(k)
			p = p[k:]
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
		if w.left > 0 {
			break
		}
		w.inFrame, done = false, true
		if op := w.hdr[0] & 0x0f; op < opClose { // a data frame: FIN ends its message
			w.fragmented = w.hdr[0]&0x80 == 0
		}
	}
	if done {
		c.touch()
	}
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
