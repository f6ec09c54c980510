package client

import (
	"net"
	"sync/atomic"

	"github.com/wsgate/wsgate"
)

// wire is the net.Conn the transport reads and writes through. It keeps promises the transport
// does not keep on its own:
//
//   - during the handshake, the transport's Close of a failed upgrade is held back, so that Dial
//     can still read the body of the refusal ("403 origin not allowed") before closing;
//   - exactly one close frame ever leaves the client, and nothing after it (RFC 6455 §5.5.1): the
//     transport answers the server's close frame even when we already sent ours, and sends a
//     close frame of its own after a read or write error; both are swallowed here;
//   - the first write error is kept, so the connection's end can say "write failed" and why.
//
// Reads happen on the reader goroutine only; writes are serialised by the transport's write lock
// and each carries one whole frame (a TCP or TLS Write writes everything or fails).
type wire struct {
	net.Conn
	handshaking atomic.Bool
	sealed      atomic.Bool  // a close frame was written, or the socket failed: drop further writes
	sentCode    atomic.Int32 // the code of the close frame we wrote, 0 if none
	writeErr    atomic.Pointer[error]
}

func (w *wire) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if err != nil && !w.handshaking.Load() {
		// The server is gone or the socket was closed: a close frame would go nowhere.
		w.sealed.Store(true)
	}
	return n, err
}

func (w *wire) Write(p []byte) (int, error) {
	if w.handshaking.Load() {
		return w.Conn.Write(p) // the upgrade request
	}
	if w.sealed.Load() {
		return len(p), nil
	}
	if len(p) >= 2 && p[0] == 0x88 { // FIN + opcode close: the one close frame we send
		w.sealed.Store(true)
		code := wsgate.CloseNoStatus
		if len(p) >= 8 && p[1]&0x7f >= 2 { // client frames are masked: the key precedes the payload
			key := p[2:6]
			code = wsgate.CloseCode(p[6]^key[0])<<8 | wsgate.CloseCode(p[7]^key[1])
		}
		w.sentCode.Store(int32(code))
	}
	n, err := w.Conn.Write(p)
	if err != nil {
		w.sealed.Store(true)
		w.writeErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

// Close closes the socket, except during the handshake (see wire).
func (w *wire) Close() error {
	if w.handshaking.Load() {
		return nil
	}
	return w.Conn.Close()
}

// failedWrite returns the first write error, nil if none.
func (w *wire) failedWrite() error {
	if p := w.writeErr.Load(); p != nil {
		return *p
	}
	return nil
}
