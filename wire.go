package wsgate

import (
	"cmp"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
	lingered atomic.Bool  // Close half-closed the socket after our close frame; linger finishes
	peerDone atomic.Bool  // the peer's close frame arrived: it sends nothing more, no need to drain
	timedOut atomic.Bool  // a read failed on its deadline

	// Inline writing: the reader goroutine writes a handler's replies itself, but must never block
	// on a peer that does not read. raw is the socket for non-blocking writes (nil for TLS, where
	// the writer goroutine does all the writing). While inline is set, whatever the socket does not
	// take at once goes to stash; while the stash is not empty or being flushed by the writer
	// goroutine (Conn.flushStash), every frame joins it, so bytes never overtake each other.
	raw      syscall.RawConn
	wmu      sync.Mutex // guards the fields below
	inline   bool
	corked   bool // frames gather in the stash, to leave in one write(2) (Conn.writeBatch)
	flushing bool
	stash    []byte

	// tryWrite's state, kept here so that a non-blocking write allocates nothing.
	rawWrite func(fd uintptr) bool
	tp       []byte
	tn       int
	terr     error
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
	w.wmu.Lock()
	if w.inline || w.corked || w.flushing || len(w.stash) > 0 {
		n, err := w.writeInlineLocked(p)
		w.wmu.Unlock()
		return n, err
	}
	w.wmu.Unlock()
	// Frames are written one at a time under the transport's lock, and no flush can start while
	// the stash is empty: this write has the socket to itself.
	return w.Conn.Write(p)
}

// Close is how the transport ends a connection. After a close frame of ours, closing a socket
// that still holds unread data from the peer makes the kernel send a reset, and the peer then
// often never reads that close frame (it sees 1006 instead of, say, 1009). So Close only shuts
// our side (FIN after the close frame); linger reads what the peer still sends and closes.
func (w *wire) Close() error {
	if tc, ok := w.Conn.(*net.TCPConn); ok && w.sentCode.Load() != 0 && !w.timedOut.Load() {
		if w.lingered.CompareAndSwap(false, true) {
			return tc.CloseWrite()
		}
		return nil
	}
	return w.Conn.Close()
}

// linger drains the peer after a half-close, for at most d, then closes the socket. A peer that
// sent its close frame has nothing more to send, so there is nothing to drain.
func (w *wire) linger(d time.Duration) {
	if w.lingered.Load() && !w.peerDone.Load() {
		_ = w.Conn.SetReadDeadline(time.Now().Add(d))
		var buf [512]byte
		for {
			if _, err := w.Conn.Read(buf[:]); err != nil {
				break
			}
		}
	}
	_ = w.Conn.Close()
}

// setInline switches inline writing on or off, and returns how many bytes wait in the stash.
func (w *wire) setInline(on bool) int {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.inline = on
	return len(w.stash)
}

// writeInlineLocked writes what the socket takes without waiting, if nothing waits before p, and
// stashes the rest.
func (w *wire) writeInlineLocked(p []byte) (int, error) {
	n := len(p)
	if w.inline && !w.corked && !w.flushing && len(w.stash) == 0 {
		k, err := w.tryWrite(p)
		if err != nil || k == n {
			return k, err
		}
		p = p[k:]
	}
	w.stash = append(w.stash, p...)
	return n, nil
}

// setCork starts or ends gathering frames in the stash.
func (w *wire) setCork(on bool) {
	w.wmu.Lock()
	w.corked = on
	w.wmu.Unlock()
}

// pushStash writes as much of the stash as the socket takes without waiting, keeping the rest.
func (w *wire) pushStash() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if len(w.stash) == 0 || w.flushing {
		return nil
	}
	k, err := w.tryWrite(w.stash)
	w.stash = w.stash[:copy(w.stash, w.stash[k:])]
	return err
}

// takeStash hands the stash to the flushing writer goroutine; empty means the flush is over.
func (w *wire) takeStash() []byte {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if len(w.stash) == 0 {
		w.flushing = false
		return nil
	}
	b := w.stash
	w.stash = nil
	w.flushing = true
	return b
}

// recycle gives a flushed stash buffer back for the next batch, unless it grew large.
func (w *wire) recycle(b []byte) {
	if cap(b) > maxCork {
		return
	}
	w.wmu.Lock()
	if w.stash == nil {
		w.stash = b[:0]
	}
	w.wmu.Unlock()
}

// tryWrite is one non-blocking write(2), repeated while it makes progress. Called with wmu held;
// the callback's state lives in the wire, so that a write allocates nothing.
func (w *wire) tryWrite(p []byte) (int, error) {
	if w.rawWrite == nil {
		w.rawWrite = w.rawWriteFD
	}
	w.tp, w.tn, w.terr = p, 0, nil
	err := w.raw.Write(w.rawWrite)
	n, werr := w.tn, w.terr
	w.tp, w.terr = nil, nil
	return n, cmp.Or(err, werr)
}

func (w *wire) rawWriteFD(fd uintptr) bool {
	for len(w.tp) > 0 {
		k, e := syscall.Write(int(fd), w.tp)
		if k > 0 {
			w.tn += k
			w.tp = w.tp[k:]
		}
		if e == syscall.EINTR {
			continue
		}
		if e != nil && e != syscall.EAGAIN {
			w.terr = e
		}
		if e != nil || k <= 0 {
			break
		}
	}
	return true // never wait for the socket: the stash and the writer goroutine do
}
