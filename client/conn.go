package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/gws"

	"github.com/wsgate/wsgate"
)

// connState is the life of a connection: open → closing (Close or CloseNow called) → closed.
type connState uint8

const (
	stateOpen connState = iota
	stateClosing
	stateClosed
)

// message is one received data message, its bytes owned by whoever takes it.
type message struct {
	typ  wsgate.MessageType
	data []byte
}

// Conn is a client WebSocket connection, made by Dial. See the package documentation for its
// concurrency contract: every method is safe for concurrent use; keep a goroutine reading.
type Conn struct {
	sock         *gws.Conn
	wire         *wire
	proto        string
	closeTimeout time.Duration

	msgs  chan message  // from the reader to Read, unbuffered; closed when the reader ends
	abort chan struct{} // closed by CloseNow: the reader drops what nobody took
	done  chan struct{} // closed when the reader goroutine has returned
	turn  chan struct{} // one slot: the writer whose turn it is holds it

	abortOnce sync.Once
	pingSeq   atomic.Uint64

	mu       sync.Mutex // guards the fields below
	state    connState
	sent     *wsgate.CloseError // the close frame we sent, nil if none
	cause    *wsgate.CloseError // why we dropped the connection (CloseNow, close timeout), nil if we did not
	result   *wsgate.CloseError // how the connection ended; set once, when the reader ends
	pings    map[uint64]chan struct{}
	finished bool
}

func newConn(w *wire, o *Options) *Conn {
	return &Conn{
		wire:         w,
		closeTimeout: o.CloseTimeout,
		msgs:         make(chan message),
		abort:        make(chan struct{}),
		done:         make(chan struct{}),
		turn:         make(chan struct{}, 1),
		pings:        make(map[uint64]chan struct{}),
	}
}

// start runs the reader once the handshake has succeeded.
func (c *Conn) start(sock *gws.Conn, proto string) {
	c.sock, c.proto = sock, proto
	go func() { // owner: c; ends when the socket does; CloseNow and Close wait for it
		defer close(c.done)
		defer c.recoverTransport()
		sock.ReadLoop()
	}()
}

// Subprotocol returns the subprotocol the server chose, "" if none.
func (c *Conn) Subprotocol() string { return c.proto }

// Read returns the next message: its type (wsgate.Text or wsgate.Binary) and its data, which is
// the caller's to keep. When ctx ends first, Read returns ctx's error and the connection stays
// as it was. Once the connection has ended and every message was taken, Read returns a
// *wsgate.CloseError saying how (see the package documentation).
func (c *Conn) Read(ctx context.Context) (wsgate.MessageType, []byte, error) {
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return 0, nil, c.ended()
		}
		return m.typ, m.data, nil
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

// ended returns how the connection ended; call it once done is closed.
func (c *Conn) ended() *wsgate.CloseError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.result
}

// Write sends one message of type wsgate.Text or wsgate.Binary, waiting for its turn and for the
// socket; ctx bounds both. Text must be valid UTF-8 (ErrInvalidUTF8 otherwise, and the connection
// stays open). If ctx ends during the socket write, the connection is dropped (a partial frame
// cannot be taken back) and Write returns ctx's error.
func (c *Conn) Write(ctx context.Context, typ wsgate.MessageType, data []byte) error {
	if typ != wsgate.Text && typ != wsgate.Binary {
		return ErrInvalidMessageType
	}
	if typ == wsgate.Text && !utf8.Valid(data) {
		return ErrInvalidUTF8
	}
	return c.write(ctx, gws.Opcode(typ), data)
}

// Ping sends a ping and waits for the server's pong carrying the same payload, or for ctx. The
// pong is seen by the reader, which stands still while a message waits for Read: keep reading.
func (c *Conn) Ping(ctx context.Context) error {
	id := c.pingSeq.Add(1)
	pong := make(chan struct{})
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return ErrClosed
	}
	c.pings[id] = pong
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pings, id)
		c.mu.Unlock()
	}()
	if err := c.write(ctx, gws.OpcodePing, binary.BigEndian.AppendUint64(nil, id)); err != nil {
		return err
	}
	select {
	case <-pong:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	}
}

// write sends one frame in its turn. A failed socket write has already made the transport close
// the socket; the reader then ends the connection.
func (c *Conn) write(ctx context.Context, op gws.Opcode, data []byte) error {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	}
	defer func() { <-c.turn }()
	c.mu.Lock()
	open := c.state == stateOpen
	c.mu.Unlock()
	if !open {
		return ErrClosed
	}
	err := c.withDeadline(ctx, func() error { return c.sock.WriteMessage(op, data) })
	if err != nil {
		if ctx.Err() != nil {
			c.CloseNow()
			return ctx.Err()
		}
		if errors.Is(err, net.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("client: write: %w", err)
	}
	return nil
}

// withDeadline runs the socket write f under ctx: ctx's deadline becomes the write deadline, and
// ctx ending interrupts the write. The caller holds the turn, so no other write shares the deadline.
func (c *Conn) withDeadline(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dl, _ := ctx.Deadline() // zero: no deadline
	_ = c.wire.Conn.SetWriteDeadline(dl)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = c.wire.Conn.SetWriteDeadline(time.Unix(1, 0))
	})
	err := f()
	if !stop() {
		<-fired
	}
	_ = c.wire.Conn.SetWriteDeadline(time.Time{})
	return err
}
