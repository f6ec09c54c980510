package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/gws"

	"github.com/wsgate/wsgate"
)

// Close performs the closing handshake: after the write in progress, it sends a close frame with
// code and reason (cut to 123 bytes, on a UTF-8 boundary) and waits up to Options.CloseTimeout for
// the server's close frame, then for the socket to close. Messages arriving meanwhile still go to
// Read. Close returns nil when the server answered, ErrCloseTimeout when it did not (the
// connection is then dropped), ErrClosed if the connection was already closing or closed, and
// ErrInvalidCloseCode for a code an endpoint may not send (1000-1003, 1007-1014, 3000-4999 are).
func (c *Conn) Close(code wsgate.CloseCode, reason string) error {
	if !code.Sendable() {
		return ErrInvalidCloseCode
	}
	reason = wsgate.TruncateCloseReason(reason)
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return ErrClosed
	}
	c.state = stateClosing
	c.sent = &wsgate.CloseError{Code: code, Reason: reason}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), c.closeTimeout)
	defer cancel()
	frame := append([]byte{byte(code >> 8), byte(code)}, reason...)
	err := c.sendClose(ctx, frame)
	if err == nil {
		select {
		case <-c.done:
		case <-ctx.Done():
			err = ErrCloseTimeout
		}
	}
	if err != nil {
		c.drop(&wsgate.CloseError{Code: code, Reason: reason, Err: err})
		return err
	}
	if res := c.ended(); !res.Remote && res.Err != nil {
		return res.Err // the server did not answer with a close frame
	}
	return nil
}

// sendClose writes the close frame in its turn, bounded by ctx.
func (c *Conn) sendClose(ctx context.Context, frame []byte) error {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return ErrCloseTimeout
	case <-c.done:
		return nil // the connection has ended already; ended() says how
	}
	defer func() { <-c.turn }()
	err := c.withDeadline(ctx, func() error { return c.sock.WriteMessage(gws.OpcodeCloseConnection, frame) })
	if err != nil && ctx.Err() != nil {
		return ErrCloseTimeout
	}
	return nil // a failed write has closed the socket; the reader reports the loss
}

// CloseNow drops the TCP connection without a close frame (the server sees 1006) and returns once
// the reader has ended. Messages not yet taken by Read are discarded. It is idempotent.
func (c *Conn) CloseNow() {
	c.drop(&wsgate.CloseError{Code: wsgate.CloseAbnormal, Reason: "closed by client"})
}

// drop closes the socket, recording cause unless another reason came first, and waits for the reader.
func (c *Conn) drop(cause *wsgate.CloseError) {
	c.mu.Lock()
	if c.state == stateOpen {
		c.state = stateClosing
	}
	if c.cause == nil {
		c.cause = cause
	}
	c.mu.Unlock()
	c.abortOnce.Do(func() { close(c.abort) })
	c.wire.sealed.Store(true)
	_ = c.wire.Conn.Close()
	<-c.done
}

// events adapts the transport's callbacks, all made on the reader goroutine.
type events struct{ c *Conn }

func (e *events) OnOpen(*gws.Conn) {}

func (e *events) OnPing(sock *gws.Conn, payload []byte) {
	// RFC 6455 §5.5.3: the pong carries the ping's payload. After our close frame the wire drops it.
	_ = sock.WritePong(payload)
}

func (e *events) OnPong(_ *gws.Conn, payload []byte) {
	if len(payload) != 8 {
		return // not one of ours
	}
	id := binary.BigEndian.Uint64(payload)
	c := e.c
	c.mu.Lock()
	if ch, ok := c.pings[id]; ok {
		close(ch)
		delete(c.pings, id)
	}
	c.mu.Unlock()
}

func (e *events) OnMessage(_ *gws.Conn, m *gws.Message) {
	// Copy out of the transport's pooled buffer: the caller owns what Read returns.
	msg := message{typ: wsgate.MessageType(m.Opcode), data: append([]byte{}, m.Bytes()...)}
	_ = m.Close()
	select {
	case e.c.msgs <- msg:
	case <-e.c.abort: // CloseNow: nobody will take it
	}
}

func (e *events) OnClose(_ *gws.Conn, err error) { e.c.finish(err) }

// finish settles how the connection ended, on the reader goroutine, once the transport has stopped
// reading: Read gets the messages already handed over, then the result.
func (c *Conn) finish(err error) {
	_ = c.wire.Conn.Close()
	var peer *gws.CloseError
	byPeer := errors.As(err, &peer)
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished = true
	var res *wsgate.CloseError
	switch {
	case c.sent != nil && c.wire.sentCode.Load() == int32(c.sent.Code):
		// We started the close; the server answered it, or the reason we gave up is in cause.
		cp := *c.sent
		if !byPeer {
			cp.Err = lost(c.cause, err)
		}
		res = &cp
	case byPeer:
		res = peerClose(peer, wsgate.CloseCode(c.wire.sentCode.Load()))
	case c.cause != nil:
		res = c.cause
	case c.wire.failedWrite() != nil:
		res = &wsgate.CloseError{Code: wsgate.CloseAbnormal, Reason: "write failed", Err: c.wire.failedWrite()}
	case c.wire.sentCode.Load() != 0:
		// The transport refused what the server sent (protocol error, bad UTF-8, too big).
		res = &wsgate.CloseError{Code: wsgate.CloseCode(c.wire.sentCode.Load()), Reason: transportReason(err), Err: err}
	default:
		res = &wsgate.CloseError{Code: wsgate.CloseAbnormal, Reason: "connection lost", Err: lost(nil, err)}
	}
	c.state = stateClosed
	c.result = res
	c.mu.Unlock()
	close(c.msgs)
}

// lost is the error of a connection that ended without the close frame we waited for.
func lost(cause *wsgate.CloseError, err error) error {
	if cause != nil && cause.Err != nil {
		return cause.Err
	}
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// peerClose is the result of a close started by the server; answered is the code we answered with.
func peerClose(peer *gws.CloseError, answered wsgate.CloseCode) *wsgate.CloseError {
	code := wsgate.CloseCode(peer.Code)
	switch {
	case code == 0:
		return &wsgate.CloseError{Code: wsgate.CloseNoStatus, Remote: true}
	case !code.Sendable() || !utf8.Valid(peer.Reason):
		// The transport answered 1002 (or 1007): report that, not what the server claimed.
		return &wsgate.CloseError{Code: answered, Reason: fmt.Sprintf("invalid close frame from server (code %d)", code)}
	}
	return &wsgate.CloseError{Code: code, Reason: string(peer.Reason), Remote: true}
}

// transportReason words a transport error for CloseError.Reason without naming the transport.
func transportReason(err error) string {
	if errors.Is(err, gws.ErrTextEncoding) {
		return "invalid UTF-8 in text message"
	}
	if s, ok := err.(interface{ Uint16() uint16 }); ok {
		switch wsgate.CloseCode(s.Uint16()) {
		case wsgate.CloseProtocolError:
			return "protocol error"
		case wsgate.CloseMessageTooBig:
			return "message too big"
		case wsgate.CloseInvalidPayload:
			return "invalid payload"
		}
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// recoverTransport contains a panic of the transport's read loop to this connection: it ends as
// lost (1006) instead of taking the process down.
func (c *Conn) recoverTransport() {
	r := recover()
	if r == nil {
		return
	}
	c.wire.sealed.Store(true)
	c.finish(fmt.Errorf("client: transport panic: %v", r))
}
