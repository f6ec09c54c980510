package wsgate

import (
	"bytes"
	"cmp"
	"encoding/binary"
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
//   - every byte read is seen by the connection's frameWatch, which proves the peer alive for each
//     complete frame (Config.PingInterval) and times its messages (Config.MessageTimeout);
//   - once the connection is closing, reading waits for our close frame to be out and then reads
//     at most closeReadBudget bytes, looking for the peer's close frame (Read, linger).
//
// It is also where frames leave. Without permessage-deflate, the connection's frames are built by
// wsgate (frame.go) and written here directly (send, flush); the transport writes only its own
// close frames (Write). With it, every frame goes through the transport. Every write after the
// handshake holds wmu, so frames never interleave and nothing passes a close frame.
type wire struct {
	net.Conn
	c        *Conn
	pre      []byte // bytes buffered by net/http before the hijack, served first
	deflate  bool   // permessage-deflate was negotiated: data frames go through the transport
	framed   atomic.Bool
	sealed   atomic.Bool           // a close frame was written, or the peer is gone: drop further writes
	broken   atomic.Bool           // a read failed: the reader is ending the connection
	sentCode atomic.Int32          // the code of the close frame we wrote, 0 if none
	lingered atomic.Bool           // our close frame is written in full, and the socket half-closed (FIN)
	peerDone atomic.Bool           // the peer's close frame arrived: it sends nothing more, no need to drain
	timedOut atomic.Bool           // a read failed on its deadline
	failed   atomic.Pointer[error] // the first write that failed, if one did
	sig      atomic.Pointer[closeSignals]
	// closeRead counts the bytes read since the connection began closing (reader goroutine only).
	closeRead int

	// raw is the socket for non-blocking writes: the reader goroutine writes a handler's replies
	// itself (send with block unset), but must never block on a peer that does not read. What the
	// socket does not take at once waits for the writer goroutine: the rest of a frame in its own
	// buffer (tail), later frames copied into stash, so bytes never overtake each other. raw is
	// nil for TLS, where the writer goroutine does all the writing. Several small frames are also
	// gathered in the stash, to leave in one write(2).
	raw      syscall.RawConn
	wmu      sync.Mutex // held for every write after the handshake; guards the fields below
	tail     []byte     // the rest of a frame the socket took only part of; goes first
	tailBuf  *[]byte    // the pooled buffer holding tail, if it is one, owned by the wire
	stash    []byte     // in stashBuf, a pooled buffer, returned when the stash empties
	stashBuf *[]byte
	// cut is how many bytes are left to write of the stash's first frame when a write took only
	// part of it (0: the stash starts with a whole frame); cutMsg, whether that frame is a data
	// message, which counts in Stats().Sent once its last byte is written (countStash).
	cut    int
	cutMsg bool
	cutOp  byte // the first byte of the cut frame, for its message type
	tailOp byte // the first byte of tail's frame, for its message type
	armed  bool // this send, flush or Write set the write deadline, for a write that waits
	full   bool // a non-blocking write in this send came back short

	// tryWrite's state, kept here so that a non-blocking write allocates nothing.
	rawWrite func(fd uintptr) bool
	tp       []byte
	tn       int
	terr     error
}

// errSealed is what a write gets from a sealed wire: it writes nothing, and the connection is ending
// already (our close frame is out, the peer's close frame was answered, a read or a write failed).
var errSealed = errors.New("wsgate: connection is ending")

// closeReadBudget bounds what is read from a peer once its connection is closing (Conn.Close, the
// slow-consumer policy, a close frame of the transport's): enough to find the peer's close frame
// behind a request or two in flight, not a flood. Nothing of it reaches the handler. Beyond it the
// socket is left unread until the close timeout drops it: a peer that floods instead of reading
// costs the server its socket buffers, not its CPU.
const closeReadBudget = 4 << 20

// closeSignals are a connection's signals once it is closing, made then: an open connection
// carries a nil pointer only.
type closeSignals struct {
	out      chan struct{} // closed once our close frame is written in full, or the connection dropped
	gone     chan struct{} // closed when the connection is dropped
	outOnce  sync.Once
	goneOnce sync.Once
}

// signals returns the connection's close signals, making them on first use.
func (w *wire) signals() *closeSignals {
	if s := w.sig.Load(); s != nil {
		return s
	}
	s := &closeSignals{out: make(chan struct{}), gone: make(chan struct{})}
	if w.sig.CompareAndSwap(nil, s) {
		return s
	}
	return w.sig.Load()
}

func (s *closeSignals) fireOut()  { s.outOnce.Do(func() { close(s.out) }) }
func (s *closeSignals) fireGone() { s.goneOnce.Do(func() { close(s.gone) }) }

// testHookRead, set only by tests (export_test.go), runs before each read of the transport's;
// testHookRestore when a read clears the heartbeat's deadline, just before it does.
// testHookWritten after a batch has been written and the wire's lock released, before it is
// settled.
var testHookRead, testHookRestore, testHookWritten atomic.Pointer[func(*Conn)]

func (w *wire) Read(p []byte) (int, error) {
	if len(w.pre) > 0 {
		n := copy(p, w.pre)
		w.pre = w.pre[n:]
		if len(w.pre) == 0 {
			w.pre = nil
		}
		w.c.inbound.observe(w.c, p[:n])
		return n, nil
	}
	if h := testHookRead.Load(); h != nil {
		(*h)(w.c)
	}
	closing := w.c.closing.Load()
	var err error
	if closing {
		p, err = w.closingRead(p)
	}
	var n int
	if err == nil {
		n, err = w.Conn.Read(p)
		for n == 0 && err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			// The scanner's request to park, or the pong's deadline (park.go).
			park, again := w.c.stopReading()
			if park {
				return 0, errParked
			}
			if !again {
				break
			}
			n, err = w.Conn.Read(p)
		}
	}
	if closing {
		w.closeRead += n
	}
	if n > 0 {
		addBytes(&w.c.ctr.bytesIn, w.c.inbound.observe(w.c, p[:n]))
	}
	if err != nil {
		// The peer is gone (EOF, reset) or silent past a deadline: a close frame would go nowhere,
		// and the end is reported as abnormal (1006), not as a close we never negotiated.
		w.timedOut.Store(errors.Is(err, os.ErrDeadlineExceeded))
		w.broken.Store(true)
		w.sealed.Store(true)
	}
	return n, err
}

// closingRead bounds a read once the connection is closing: nothing read now reaches the
// handler, only the peer's close frame is looked for. So the reader waits until our close frame is
// out (reading on meanwhile would read a slow consumer's flood for nothing), then reads what is
// left of closeReadBudget; beyond it, it waits, reading nothing, for the connection to be dropped
// (at the close timeout).
func (w *wire) closingRead(p []byte) ([]byte, error) {
	s := w.signals()
	<-s.out
	select {
	case <-s.gone:
		return nil, net.ErrClosed
	default:
	}
	rem := closeReadBudget - w.closeRead
	if rem <= 0 {
		<-s.gone
		return nil, net.ErrClosed
	}
	return p[:min(len(p), rem)], nil
}

// Write is the transport's way out: the 101 response, then its own frames (close frames, and,
// with permessage-deflate, every frame), each whole, under the transport's lock.
func (w *wire) Write(p []byte) (int, error) {
	p0 := p
	if !w.framed.Load() {
		// The 101 names the extension only if the transport negotiated it.
		w.deflate = w.deflate || bytes.Contains(p, []byte("\r\nSec-WebSocket-Extensions:"))
		return w.Conn.Write(p)
	}
	if w.sealed.Load() { // without waiting for the lock, which a blocked writer may hold
		return w.discard(p)
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.sealed.Load() {
		return w.discard(p)
	}
	w.armed = false
	if err := w.drainLocked(true); err != nil {
		return 0, err
	}
	closeFrame := len(p) >= 2 && p[0] == 0x80|opClose // the one close frame we send
	if closeFrame {
		code := CloseNoStatus
		if len(p) >= 4 && p[1]&0x7f >= 2 {
			code = CloseCode(p[2])<<8 | CloseCode(p[3])
		}
		w.seal(code)
		p = ownCloseReason(p)
	}
	n, err := w.put(p, true)
	if n > 0 {
		w.countTyped(p[0], n)
	}
	if err == nil {
		n = len(p0)
		if closeFrame {
			w.closeOut()
		} else if isMessageFrame(p) { // permessage-deflate: the transport writes each message whole
			w.countSent(p[0])
		}
	}
	return n, err
}

// discard drops a frame the transport writes on a sealed wire: its close frames silently (there is
// only one close frame, and it has left), its data frames with errSealed, so that they do not
// count as sent.
func (w *wire) discard(p []byte) (int, error) {
	if len(p) >= 1 && p[0]&0x0f == opClose {
		return len(p), nil
	}
	return 0, errSealed
}

// ownCloseReason drops the transport's name from the reason of a close frame it wrote for an
// error it detected ("gws: protocol error" → "protocol error"): peers see wsgate's reasons only.
func ownCloseReason(f []byte) []byte {
	const prefix = "gws: "
	if len(f) < 4+len(prefix) || f[1] > 125 || string(f[4:4+len(prefix)]) != prefix {
		return f
	}
	payload := append(f[2:4:4], f[4+len(prefix):]...)
	return appendFrame(make([]byte, 0, 2+len(payload)), opClose, payload)
}

// seal records that our close frame is being written: nothing may follow it.
func (w *wire) seal(code CloseCode) {
	w.sealed.Store(true)
	w.sentCode.Store(int32(code))
}

func (w *wire) setWriteDeadline() error {
	return w.Conn.SetWriteDeadline(time.Now().Add(w.c.srv.cfg.WriteTimeout))
}

// send writes b's frames, in order after whatever waits in the stash: the pongs, the ping, the data
// messages, the close frame. Blocking (the writer goroutine), it writes everything within
// Config.WriteTimeout; otherwise (the reader, inline) it writes what the socket takes at once and
// stashes the rest. It returns how many bytes wait (tail and stash), and errSealed, writing
// nothing, once the wire is sealed.
func (w *wire) send(b *batch, block bool) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.sealed.Load() {
		return w.waiting(), errSealed
	}
	w.full, w.armed = false, false
	for _, p := range b.pongs {
		w.stashFrame(opPong, p)
	}
	if b.ping {
		w.stashFrame(opPing, nil)
	}
	for i := range b.msgs {
		last := i == len(b.msgs)-1 && b.close == nil
		if err := w.emitLocked(&b.msgs[i], block, last); err != nil {
			return w.waiting(), err
		}
	}
	if b.close != nil {
		code := CloseNoStatus
		if len(b.close) >= 2 {
			code = CloseCode(b.close[0])<<8 | CloseCode(b.close[1])
		}
		w.seal(code)
		w.stashFrame(opClose, b.close)
	}
	err := w.drainLocked(block)
	return w.waiting(), err
}

// emitLocked writes message m's frame after whatever waits. Small frames that are not the last
// are gathered in the stash instead, to leave together: a copy costs less than a system call per
// frame, up to maxCork bytes.
func (w *wire) emitLocked(m *outMsg, block, last bool) error {
	f := m.frame
	if w.waiting() > 0 && len(w.stash)+len(f) > maxCork {
		if err := w.drainLocked(block); err != nil {
			return err
		}
	}
	if w.waiting() > 0 || !last && len(f) <= maxCork { // gather, or wait behind a full socket
		w.reserve(len(f))
		w.stash = append(w.stash, f...)
		return nil
	}
	k, err := w.put(f, block)
	w.countTyped(f[0], k)
	if k == len(f) {
		w.countSent(f[0])
	} else if err == nil {
		// The socket took part of the frame: the rest waits for the writer goroutine where it
		// is, in the message's own buffer, which the wire now owns, rather than copied.
		w.tail, w.tailBuf, w.tailOp = f[k:], m.pooled, f[0]
		m.pooled = nil
	}
	return err
}

// put writes p: all of it if block, else what the socket takes at once (nothing once it came
// back short in this send). A blocking write, too, first takes what the socket takes at once: only
// a write that has to wait arms a write deadline, Config.WriteTimeout from then, so that the usual
// write, into a socket with room, costs no timer. A failed write may have left part of a frame on
// the wire: it seals the wire, so that nothing, not even the transport's close frame, follows.
func (w *wire) put(p []byte, block bool) (int, error) {
	k, err := w.putBytes(p, block) // the callers count the k bytes written, by frame type
	if err != nil {
		w.sealed.Store(true)
		failed := err // declared here, so that only a failed write allocates it
		w.failed.CompareAndSwap(nil, &failed)
	}
	return k, err
}

func (w *wire) putBytes(p []byte, block bool) (int, error) {
	if !block && w.full {
		return 0, nil
	}
	k := 0
	if w.raw != nil {
		var err error
		if k, err = w.tryWrite(p); err != nil || k == len(p) || !block {
			return k, err
		}
	}
	if !w.armed {
		if err := w.setWriteDeadline(); err != nil {
			return k, err
		}
		w.armed = true
	}
	n, err := w.Conn.Write(p[k:])
	return k + n, err
}

// waiting is how many bytes wait to be written before anything else: the tail, then the stash.
func (w *wire) waiting() int { return len(w.tail) + len(w.stash) }

// drainLocked writes what waits: all of it if block, else what the socket takes at once. After an
// error nothing waits any more: the connection is ending.
func (w *wire) drainLocked(block bool) error {
	var err error
	if len(w.tail) > 0 {
		var k int
		k, err = w.put(w.tail, block)
		w.countTyped(w.tailOp, k)
		w.tail = w.tail[k:]
		if len(w.tail) == 0 {
			w.countSent(w.tailOp) // the tail is the rest of a data message's frame
		}
		if len(w.tail) == 0 || err != nil {
			if w.tailBuf != nil {
				putBuf(w.tailBuf)
			}
			w.tail, w.tailBuf = nil, nil
		}
	}
	if len(w.tail) == 0 && len(w.stash) > 0 && err == nil {
		var k int
		k, err = w.put(w.stash, block)
		w.countStash(k)
		// Step past what was written; reserve copies what is left into a new buffer when it
		// needs room. Moving it to the front here, after every short write, copied the whole
		// stash each time: up to SendQueueBytes per write to a slow reader, and, during a
		// handler's long inline batch, per frame stashed behind a full socket
		// (TestMetricsCountBytesByFrameType stalled).
		w.stash = w.stash[k:]
	}
	if len(w.stash) == 0 || err != nil {
		if w.stashBuf != nil {
			putBuf(w.stashBuf)
		}
		w.stash, w.stashBuf = nil, nil
		w.cut, w.cutMsg = 0, false
	}
	if err == nil && w.waiting() == 0 && w.sentCode.Load() != 0 {
		w.closeOut() // the close frame was in the stash
	}
	return err
}

// countStash counts in Stats().Sent the data messages whose frames end in the first k bytes of
// the stash, which have just been written: a message counts once the socket has taken all of it,
// not when it is taken from the queue or stashed, so that Sent is what the peer can receive. The
// stash holds whole frames, but for its first, which a cut write may have begun (w.cut).
func (w *wire) countStash(k int) {
	var n [2]uint64     // messages: text, binary; added once per write, not once per message
	var typed [3]uint64 // bytes, as connCounters.bytesOut
	off := 0
	if w.cut > 0 {
		if k < w.cut {
			w.cut -= k
			typed[bytesKind(w.cutOp)] += uint64(k)
			addBytes(&w.c.ctr.bytesOut, typed)
			return
		}
		off = w.cut
		typed[bytesKind(w.cutOp)] += uint64(off)
		if w.cutMsg {
			n[w.cutOp&0x0f-1]++
		}
		w.cut, w.cutMsg = 0, false
	}
	for off < k {
		f := w.stash[off:]
		end := off + stashedFrameLen(f)
		if end > k {
			w.cut, w.cutMsg, w.cutOp = end-k, isMessageFrame(f), f[0]
			typed[bytesKind(f[0])] += uint64(k - off)
			break
		}
		typed[bytesKind(f[0])] += uint64(end - off)
		if isMessageFrame(f) {
			n[f[0]&0x0f-1]++ // Text (1) or Binary (2)
		}
		off = end
	}
	for i := range n {
		if n[i] > 0 {
			w.c.ctr.msgsOut[i].Add(n[i])
		}
	}
	addBytes(&w.c.ctr.bytesOut, typed)
}

// countTyped counts in bytesOut k bytes just written of a frame whose first byte is b0 (the
// server sends no continuation frames).
func (w *wire) countTyped(b0 byte, k int) {
	if k > 0 {
		w.c.ctr.bytesOut[bytesKind(b0)].Add(uint64(k))
	}
}

// addBytes adds the counts of n that are not 0 to ctr.
func addBytes(ctr *[3]atomic.Uint64, n [3]uint64) {
	for i, v := range n {
		if v > 0 {
			ctr[i].Add(v)
		}
	}
}

// countSent counts a data message whose frame began with byte b0, once the socket took it all.
func (w *wire) countSent(b0 byte) {
	countMessage(&w.c.ctr.msgsOut, MessageType(b0&0x0f))
}

// stashedFrameLen is the length of the whole server frame (unmasked) that f begins with.
func stashedFrameLen(f []byte) int {
	switch n := int(f[1] & 0x7f); n {
	case 126:
		return 4 + int(binary.BigEndian.Uint16(f[2:]))
	case 127:
		return 10 + int(binary.BigEndian.Uint64(f[2:]))
	default:
		return 2 + n
	}
}

// isMessageFrame reports whether frame f is a whole data message: final, text or binary.
func isMessageFrame(f []byte) bool {
	if len(f) == 0 {
		return false
	}
	op := MessageType(f[0] & 0x0f)
	return f[0]&0x80 != 0 && (op == Text || op == Binary)
}

// closeOut is called, wmu held, once our close frame has been written in full. Nothing may follow
// it, so our side of the socket is shut at once (FIN): a peer that reads sees the close frame and
// then the end of the stream. The reader, waiting for this (closingRead, linger), reads on.
func (w *wire) closeOut() {
	if !w.lingered.CompareAndSwap(false, true) {
		return
	}
	if cw, ok := w.Conn.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	w.signals().fireOut()
}

// quiesce waits for a write in flight to end. Called once the socket is closed and the wire
// sealed: such a write fails at once, and a write after it writes nothing (sealed, or the socket
// closed), so that after quiesce nothing more is written or counted.
func (w *wire) quiesce() {
	w.wmu.Lock()
	w.wmu.Unlock() // taking the lock is the wait: nothing is done under it
}

// drop closes the socket at once, whatever waits, and wakes a reader waiting while closing.
func (w *wire) drop() {
	s := w.signals()
	s.fireGone()
	s.fireOut()
	_ = w.Conn.Close()
	w.c.unpark() // a closed socket leaves epoll without an event: its reader finds it closed
}

// flush writes, blocking, what inline writes left in the stash. The writer goroutine does this
// first, so the stashed bytes keep their place.
func (w *wire) flush() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.armed = false
	return w.drainLocked(true)
}

// stashFrame appends a control frame to the stash.
func (w *wire) stashFrame(op byte, p []byte) {
	w.reserve(maxFrameHeader + len(p))
	w.stash = appendFrame(w.stash, op, p)
}

// reserve makes room for n more bytes in the stash, in a pooled buffer.
func (w *wire) reserve(n int) {
	if cap(w.stash)-len(w.stash) >= n {
		return
	}
	nb := getBuf(max(len(w.stash)+n, 2*cap(w.stash), 512))
	*nb = append((*nb)[:0], w.stash...)
	if w.stashBuf != nil {
		putBuf(w.stashBuf)
	}
	w.stash, w.stashBuf = *nb, nb
}

// Close is how the transport ends a connection. After a close frame of ours, closing a socket
// that still holds unread data from the peer makes the kernel send a reset, and the peer then
// often never reads that close frame (it sees 1006 instead of, say, 1009). So once our close frame
// is written (or while it waits to be), Close leaves the socket open: closeOut shuts our side
// (FIN) after the close frame, and linger reads what the peer still sends and closes.
func (w *wire) Close() error {
	defer w.c.unpark() // the reader, if parked, ends the connection (or reads the peer's close frame)
	if w.lingers() {
		return nil
	}
	return w.Conn.Close()
}

// closeWriter is a socket whose sending side can be shut alone: *net.TCPConn (FIN), and *tls.Conn
// (close_notify, then FIN).
type closeWriter interface{ CloseWrite() error }

// lingers reports whether the socket stays open after the reader ends, for linger to finish: a
// socket that can be half-closed (TCP, or TLS over it), carrying a close frame of ours, and a peer
// not yet silent past a deadline.
func (w *wire) lingers() bool {
	_, halfClose := w.Conn.(closeWriter)
	return halfClose && w.sentCode.Load() != 0 && !w.timedOut.Load()
}

// linger finishes a connection whose reader has ended. It waits for our close frame to be out,
// then reads what the peer still sends, at most what is left of closeReadBudget, and closes the
// socket when the peer is done, d from now (the close timeout), or when the connection is dropped
// (its own close timeout, Server.Shutdown's deadline, Server.Close), whichever comes first. A
// peer that sent its close frame has nothing more to send, so there is nothing to drain.
func (w *wire) linger(d time.Duration) {
	defer w.c.stopCloseTimer()
	if !w.lingers() { // Close has closed the socket
		_ = w.Conn.Close()
		return
	}
	s := w.signals()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.out:
	case <-t.C:
	}
	if w.lingered.Load() && !w.peerDone.Load() {
		_ = w.Conn.SetReadDeadline(time.Now().Add(d))
		var buf [4096]byte
		for w.closeRead < closeReadBudget {
			n, err := w.Conn.Read(buf[:min(len(buf), closeReadBudget-w.closeRead)])
			w.closeRead += n
			if err != nil {
				break
			}
		}
		if w.closeRead >= closeReadBudget { // the peer sends on: leave it unread until the end
			select {
			case <-t.C:
			case <-s.gone:
			}
		}
	}
	_ = w.Conn.Close()
}

// tryWrite is one non-blocking write(2), repeated while it makes progress. Called with wmu held;
// the callback's state lives in the wire, so that a write allocates nothing.
func (w *wire) tryWrite(p []byte) (int, error) {
	if w.rawWrite == nil {
		w.rawWrite = w.rawWriteFD
	}
	w.tp, w.tn, w.terr = p, 0, nil
	err := w.raw.Write(w.rawWrite)
	if errors.Is(err, os.ErrDeadlineExceeded) && !w.armed {
		// The deadline of an earlier blocking write has passed, and a passed deadline fails every
		// write until another is set (before the callback runs). A write that never waits needs
		// none: clear it and write. (One armed in this send is this send's: a real timeout.)
		if err = w.Conn.SetWriteDeadline(time.Time{}); err == nil {
			err = w.raw.Write(w.rawWrite)
		}
	}
	n, werr := w.tn, w.terr
	w.tp, w.terr = nil, nil
	w.full = n < len(p)
	return n, cmp.Or(err, werr)
}
