package wsgate

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/gws"
)

// session carries the *Conn inside the transport's connection; it implements the transport's
// session interface with no storage of its own.
type session struct{ c *Conn }

func (*session) Len() int                     { return 0 }
func (*session) Load(string) (any, bool)      { return nil, false }
func (*session) Delete(string)                {}
func (*session) Store(string, any)            {}
func (*session) Range(func(string, any) bool) {}
func connOf(sock *gws.Conn) *Conn             { return sock.Session().(*session).c }

// events adapts the transport's callbacks, all made on the connection's reader goroutine, to the
// Handler: in order, OnOpen first, OnClose exactly once and last.
type events struct{ s *Server }

func (e *events) OnOpen(sock *gws.Conn) {
	c := connOf(sock)
	c.handle("OnOpen", func() { e.s.handler.OnOpen(c) })
}

// maxPendingPongs bounds the pongs owed and not yet written. Every ping gets its pong, with its
// payload, in order (RFC 6455 §5.5.2), as long as no more than this many wait at once: a peer that
// pings faster than it reads the answers gets pongs for the latest maxPendingPongs of its pings
// only, the oldest unanswered going without (§5.5.3 allows answering only the latest). So a ping
// flood holds at most maxPendingPongs×125 bytes of payload per connection, and each batch writes
// at most that many pongs ahead of the data messages queued: a flood does not starve them.
const maxPendingPongs = 16

func (e *events) OnPing(sock *gws.Conn, payload []byte) {
	c := connOf(sock)
	c.mu.Lock()
	if c.state == stateOpen {
		if len(c.pongs) == maxPendingPongs {
			n := copy(c.pongs, c.pongs[1:])
			c.pongs[n] = nil
			c.pongs = c.pongs[:n]
		}
		c.pongs = append(c.pongs, payload) // the transport allocates each control payload anew
		c.kickLocked()
		if c.heartbeatOnly && c.parkable() {
			c.askParkLocked() // the writer answers; a connection woken for the ping alone parks again
		}
	}
	c.mu.Unlock()
}

// OnPong has nothing to record (liveness is recorded for every complete frame, frameWatch); a
// connection woken for the pong alone parks again.
func (e *events) OnPong(sock *gws.Conn, _ []byte) { connOf(sock).parkAfterHeartbeat() }

func (e *events) OnMessage(sock *gws.Conn, m *gws.Message) {
	c := connOf(sock)
	defer m.Close()
	if c.heartbeatOnly {
		c.heartbeatOnly = false
		c.keepAwake()
	}
	countMessage(&c.ctr.msgsIn, MessageType(m.Opcode))
	if c.closing.Load() {
		return // closing: the handler has seen its last message
	}
	msg := Message{Type: MessageType(m.Opcode), Data: m.Bytes()}
	c.handle("OnMessage", func() { e.s.handler.OnMessage(c, msg) })
	if c.pooled && c.srv.readers.waiting.Load() > 0 {
		c.yieldReader()
	}
}

func (e *events) OnClose(sock *gws.Conn, err error) {
	c := connOf(sock)
	c.finish(err)
}

// handle runs OnOpen or OnMessage on the reader goroutine. What the callback queues is written
// when it returns, by the reader itself (one batch, as a raw echo server would write in its read
// loop), instead of waking a writer goroutine for every reply.
func (c *Conn) handle(what string, f func()) {
	c.inHandler.Store(true)
	c.call(what, f)
	c.mu.Lock()
	c.inHandler.Store(false)
	c.async = false
	deferred := c.deferred
	c.deferred = false
	switch {
	case !deferred || c.writing || c.state == stateClosed:
		c.mu.Unlock()
	case c.wire.raw == nil || c.wire.deflate:
		// TLS has no non-blocking write under its record layer, and the transport's compressor
		// blocks: the writer goroutine writes for these.
		c.spawnWriterLocked()
		c.mu.Unlock()
	default:
		c.writeInlineLocked()
	}
}

// call runs a handler callback; a panic is recovered, logged with its stack, and closes the
// connection with 1011. The process keeps running.
func (c *Conn) call(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			c.srv.panics.Add(1)
			c.srv.cfg.Logger.Error("wsgate: handler panic", "callback", what, "conn", c.id,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.mu.Lock()
			c.closeLocked(&CloseError{Code: CloseInternalError, Reason: "internal error", Err: ErrHandlerPanic}, true)
			c.mu.Unlock()
		}
	}()
	f()
}

// finish ends the connection on its reader goroutine once the transport has stopped reading: it
// settles why the connection closed, releases the queue, and calls OnClose.
func (c *Conn) finish(err error) {
	c.shut(false) // the transport has usually closed the socket already; make sure
	c.mu.Lock()
	c.state = stateClosed
	c.releaseQueueLocked()
	c.queued -= c.stashed // whatever still waits in the wire will not be written now
	c.stashed = 0
	c.pongs = nil
	res := c.closeErr
	c.mu.Unlock()

	var remote *gws.CloseError
	c.wire.peerDone.Store(errors.As(err, &remote))
	switch {
	case res != nil && res.Code != CloseAbnormal:
		// We started the close; say so if the peer never answered it.
		if c.expired.Load() {
			cp := *res
			cp.Err = errors.Join(res.Err, ErrCloseTimeout)
			if res.Err == nil {
				cp.Err = ErrCloseTimeout
			}
			res = &cp
		}
	case errors.As(err, &remote):
		code := CloseCode(remote.Code)
		switch {
		case code == 0:
			res = &CloseError{Code: CloseNoStatus, Remote: true}
		case !code.Sendable() || !utf8.Valid(remote.Reason):
			// The transport answered 1002 (or 1007): report what we sent, not what the peer claimed.
			res = &CloseError{Code: CloseCode(c.wire.sentCode.Load()), Reason: fmt.Sprintf("invalid close frame from peer (code %d)", code)}
		default:
			res = &CloseError{Code: code, Reason: string(remote.Reason), Remote: true}
		}
	case res != nil:
		// CloseNow, or a write failure, recorded before the reader stopped.
	case c.wire.failed.Load() != nil:
		// A write failed, and the transport, which wrote it (permessage-deflate), ended the
		// connection before writeFailed could record why.
		res = writeError(*c.wire.failed.Load())
	case c.wire.timedOut.Load():
		res = &CloseError{Code: CloseAbnormal, Reason: "pong timeout", Err: ErrPongTimeout}
	case c.wire.sentCode.Load() != 0:
		// The transport rejected what the peer sent (protocol error, bad UTF-8, too big).
		res = &CloseError{Code: CloseCode(c.wire.sentCode.Load()), Reason: transportReason(err), Err: err}
	default:
		if errors.Is(err, io.EOF) || err == nil {
			err = io.ErrUnexpectedEOF
		}
		res = &CloseError{Code: CloseAbnormal, Reason: "connection lost", Err: err}
	}
	c.mu.Lock()
	c.result = res
	c.mu.Unlock()

	c.srv.metrics.ended(res)
	c.srv.unregister(c)
	c.call("OnClose", func() { c.srv.handler.OnClose(c, res) })
}

// transportReason words a transport error for CloseError.Reason without naming the transport.
func transportReason(err error) string {
	if err == nil {
		return ""
	}
	switch {
	case errors.Is(err, gws.ErrTextEncoding):
		return "invalid UTF-8 in text message"
	case errors.Is(err, gws.ErrTooManyFrames):
		return "message too big: too many frames"
	}
	if s, ok := err.(interface{ Uint16() uint16 }); ok {
		switch CloseCode(s.Uint16()) {
		case CloseProtocolError:
			return "protocol error"
		case CloseMessageTooBig:
			return "message too big"
		case CloseInvalidPayload:
			return "invalid payload"
		}
	}
	return err.Error()
}

// recoverTransport contains a panic of the transport's read loop to its own connection, as net/http
// does per request: the peer gets 1011, OnClose runs once, and the process lives on.
func (c *Conn) recoverTransport() {
	r := recover()
	if r == nil {
		return
	}
	c.srv.panics.Add(1)
	c.srv.cfg.Logger.Error("wsgate: transport panic", "conn", c.id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	c.mu.Lock()
	ended := c.result != nil
	if c.closeErr == nil {
		c.closeErr = &CloseError{Code: CloseInternalError, Reason: "internal error", Err: fmt.Errorf("wsgate: transport panic: %v", r)}
	}
	c.mu.Unlock()
	if !ended {
		_ = c.sock.WriteClose(uint16(CloseInternalError), []byte("internal error"))
		c.finish(nil)
	}
}
