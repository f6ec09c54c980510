package wsgate

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
)

// wire is the net.Conn the transport reads and writes through. It exists to keep promises the
// transport does not keep on its own:
//
//   - bytes the HTTP server had already buffered before the upgrade are replayed first, instead of
//     being lost;
//   - exactly one close frame ever leaves the server, and nothing after it (RFC 6455 §5.5.1): the
//     transport answers a peer's close frame even when we already sent ours, and reports a read
//     timeout with a close frame of its own; both are swallowed here;
//   - every successful read proves the peer alive (Config.PingInterval), counted where it happens.
//
// Reads happen on the connection's reader goroutine only. Writes are serialised by the transport's
// write lock, and each one carries exactly one whole frame once framed is set.
type wire struct {
	net.Conn
	c        *Conn
	pre      []byte // bytes buffered by net/http before the hijack, served first
	framed   atomic.Bool
	sealed   atomic.Bool  // a close frame was written, or the peer is gone: drop further writes
	sentCode atomic.Int32 // the code of the close frame we wrote, 0 if none
	timedOut atomic.Bool  // a read failed on its deadline
}

func (w *wire) Read(p []byte) (int, error) {
	if len(w.pre) > 0 {
		n := copy(p, w.pre)
		w.pre = w.pre[n:]
		if len(w.pre) == 0 {
			w.pre = nil
		}
		return n, nil
	}
	n, err := w.Conn.Read(p)
	if n > 0 {
		w.c.touch()
	}
	if err != nil {
		// The peer is gone (EOF, reset) or silent past a deadline: a close frame would go nowhere,
		// and the end is reported as abnormal (1006), not as a close we never negotiated.
		w.timedOut.Store(errors.Is(err, os.ErrDeadlineExceeded))
		w.sealed.Store(true)
	}
	return n, err
}

func (w *wire) Write(p []byte) (int, error) {
	if !w.framed.Load() {
		return w.Conn.Write(p) // the 101 response
	}
	if w.sealed.Load() {
		return len(p), nil
	}
	if len(p) >= 2 && p[0] == 0x88 { // FIN + opcode close: the one close frame we send
		w.sealed.Store(true)
		code := CloseNoStatus
		if len(p) >= 4 && p[1]&0x7f >= 2 {
			code = CloseCode(p[2])<<8 | CloseCode(p[3])
		}
		w.sentCode.Store(int32(code))
	}
	return w.Conn.Write(p)
}
