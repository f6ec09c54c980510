package wsgate

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/gws"
)

// MessageType is the type of a WebSocket data message.
type MessageType uint8

// Data message types (RFC 6455 §5.6). The values are the frame opcodes.
const (
	Text   MessageType = 1
	Binary MessageType = 2
)

func (t MessageType) String() string {
	switch t {
	case Text:
		return "text"
	case Binary:
		return "binary"
	}
	return "invalid"
}

// Message is a data message received from a peer. Data is only valid until Handler.OnMessage
// returns: wsgate reuses the buffer. Copy it to keep it (Send copies for you).
type Message struct {
	Type MessageType
	Data []byte
}

// connState is the life of a connection: open → closing (close frame queued) → closed.
type connState uint8

const (
	stateOpen connState = iota
	stateClosing
	stateClosed
)

// outMsg is one queued data message, framed: frame is the whole frame as it goes on the wire, its
// payload starting at hdr. pooled, when set, is the buffer holding it, owned by the queue until
// written and then returned to its pool. A prepared message has no pooled buffer: its frame is
// shared by every queue it is in, and never changes.
type outMsg struct {
	typ    MessageType
	hdr    uint8
	pinned bool // SendPinned: PolicyDropOldest never evicts it
	frame  []byte
	pooled *[]byte
}

// payload returns the message's payload, without the frame header.
func (m *outMsg) payload() []byte { return m.frame[m.hdr:] }

// size is the payload's length, what the queue's byte bound counts.
func (m *outMsg) size() int { return len(m.frame) - int(m.hdr) }

func (m *outMsg) release() {
	if m.pooled != nil {
		putBuf(m.pooled)
	}
	*m = outMsg{}
}

// PreparedMessage is a message validated and framed once, to be queued to many connections without
// a copy per connection: the same immutable frame is written to every one (fan-out).
type PreparedMessage struct{ m outMsg }

// NewPreparedMessage copies data into a PreparedMessage, checking the type and, for Text, UTF-8.
func NewPreparedMessage(typ MessageType, data []byte) (*PreparedMessage, error) {
	if typ != Text && typ != Binary {
		return nil, ErrInvalidMessageType
	}
	if typ == Text && !utf8.Valid(data) {
		return nil, ErrInvalidUTF8
	}
	return &PreparedMessage{m: frameMessage(make([]byte, frameLen(len(data))), typ, data)}, nil
}

// Len returns the size of the message's payload in bytes.
func (p *PreparedMessage) Len() int { return p.m.size() }

// Conn is one WebSocket connection.
//
// Concurrency: every method is safe for concurrent use. Internally a connection has at most one
// reader (the goroutine that calls the Handler, in order) and at most one writer goroutine,
// started when there is something to write and gone when the queue is empty; only the holder of
// the wire's lock writes to the socket (the writer, or the reader inline after a handler, never
// both), everyone else enqueues. On Linux a plain TCP connection idle for Config.ParkAfter parks:
// its reader ends and a new one is started, by whoever wins c.park's swap from parkParked, when
// the socket is readable again (park.go). An idle connection then has no goroutine of its own.
type Conn struct {
	srv    *Server
	sock   *gws.Conn
	wire   wire // embedded: one allocation less per connection
	id     uint64
	header []string // name, value, name, value...; see connHeader
	hmap   atomic.Pointer[http.Header]
	addr   *addrSlot    // its place in MaxConnectionsPerIP, nil if not counted
	ctx    *connContext // made by the first Context call (under mu)

	// lastRead is the server clock (unix nanoseconds, coarse) at the end of the peer's last complete
	// frame; awaitPong is set while a heartbeat read deadline is armed; expired is set when the
	// close timeout dropped the connection; msgStart is the server clock at the first byte of the
	// message arriving, 0 between messages (frameWatch).
	lastRead  atomic.Int64
	msgStart  atomic.Int64
	inbound   frameWatch // the frames the peer sends, as their bytes arrive; reader only
	awaitPong atomic.Bool
	expired   atomic.Bool
	ctr       connCounters // messages and bytes in and out (Stats, Server.Metrics)
	dropped   atomic.Uint64
	closing   atomic.Bool // state != stateOpen, readable without the lock on the read path
	// inHandler is set while the reader runs a handler callback; Sends meanwhile leave the writing
	// to the reader when the callback returns (deferred). Only the reader sets it, without the
	// lock; it clears it under the lock, where Sends read it, so that no deferred write is lost.
	inHandler atomic.Bool
	// Parking (park.go): park says who reads (parkReading, parkStopping, parkParked); pongBy is
	// when the outstanding ping's pong is due (server clock, while awaitPong); woke is the server
	// clock when a reader last resumed; watched is set while the socket is in the poller's epoll
	// set; parkReq (under mu) is set while the scanner asks the reader to park; heartbeatOnly,
	// the reader's own, is set while the current reader has read no message
	// (parkAfterHeartbeat); pooled, the reader's own too, while the reader is one of the
	// Config.MaxReaders that woken connections share (readers.go).
	park          atomic.Uint32
	pongBy        atomic.Int64
	woke          atomic.Int64
	watched       atomic.Bool
	heartbeatOnly bool
	pooled        bool
	// proto is the subprotocol's index in Config.Subprotocols, or their number for none: set
	// before the connection is shared, and here, where it fills what would be padding.
	proto uint16
	data  atomic.Pointer[any]
	auth  any // what Config.Admit returned; set before the connection is shared

	mu       sync.Mutex // guards the fields below
	state    connState
	parkReq  bool
	writing  bool // a writer goroutine is running, or the reader is writing inline
	async    bool // WriteBehind was called in the current handler callback: Sends kick the writer
	deferred bool // a Send during a handler callback left its writing to the reader
	pingDue  bool // with the other bools: alone before pongs it took 8 bytes
	queue    []outMsg
	spare    []outMsg
	queued   int           // payload bytes queued or being written
	stashed  int           // bytes of c.wire.stash counted in queued
	pongs    [][]byte      // payloads of the pings not yet answered, oldest first; see maxPendingPongs
	space    chan struct{} // closed when the queue shrinks, if WaitSendQueue waits
	closeMsg []byte        // close frame payload to write after the queue; set once
	closeErr *CloseError   // why we closed, if we did
	result   *CloseError   // final reason, set when the connection has ended
	// closeTimer drops the connection Config.CloseTimeout after Close (or the slow-consumer
	// policy, or a handler panic) began closing it. Owner: the connection; stopped when it is gone.
	closeTimer *time.Timer
}

// ID returns the connection's identifier, unique within its Server.
func (c *Conn) ID() uint64 { return c.id }

// Context returns a context cancelled as soon as the connection starts closing. It is made on the
// first call, so that connections that never ask for one do not pay for it.
func (c *Conn) Context() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		ctx, cancel := context.WithCancel(context.Background())
		c.ctx = &connContext{ctx, cancel}
		if c.closing.Load() {
			cancel()
		}
	}
	return c.ctx.ctx
}

// connContext is a Conn's context, apart: 8 bytes in every Conn instead of 24, for the
// connections that ask for one.
type connContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// cancelLocked cancels the context, if one was made.
func (c *Conn) cancelLocked() {
	if c.ctx != nil {
		c.ctx.cancel()
	}
}

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.wire.RemoteAddr() }

// Header returns the headers of the upgrade request that Config.KeepHeaders names (by default
// DefaultKeepHeaders: Cookie, Origin, User-Agent, Authorization, ...), never the handshake's own
// (Connection, Upgrade, Sec-WebSocket-Key, -Version, -Extensions). Do not modify it.
func (c *Conn) Header() http.Header {
	if h := c.hmap.Load(); h != nil {
		return *h
	}
	h := make(http.Header, len(c.header)/2)
	for i := 0; i+1 < len(c.header); i += 2 {
		h[c.header[i]] = append(h[c.header[i]], c.header[i+1])
	}
	c.hmap.CompareAndSwap(nil, &h)
	return *c.hmap.Load()
}

// Subprotocol returns the negotiated subprotocol, or "" if none was.
func (c *Conn) Subprotocol() string {
	if p := c.srv.cfg.Subprotocols; int(c.proto) < len(p) {
		return p[c.proto]
	}
	return ""
}

// SetData attaches an application value to the connection (a user, a session); Data returns it.
func (c *Conn) SetData(v any) { c.data.Store(&v) }

// Auth returns what Config.Admit returned for this connection's upgrade request (nil without
// Admit): the identity the layers above established from the request.
func (c *Conn) Auth() any { return c.auth }

// Data returns the value given to SetData, or nil.
func (c *Conn) Data() any {
	if p := c.data.Load(); p != nil {
		return *p
	}
	return nil
}

// ConnStats counts a connection's traffic.
type ConnStats struct {
	Received uint64 // messages received
	Sent     uint64 // messages written to the socket, each once the socket has taken all of it
	Dropped  uint64 // messages discarded by PolicyDropOldest or PolicyDropNewest
	Queued   int    // payload bytes waiting to be written
}

// Stats returns the connection's counters.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	q := c.queued
	c.mu.Unlock()
	r := &c.ctr
	return ConnStats{Received: r.msgsIn[0].Load() + r.msgsIn[1].Load(), Sent: r.msgsOut[0].Load() + r.msgsOut[1].Load(), Dropped: c.dropped.Load(), Queued: q}
}

// Dropped returns how many messages Config.SlowConsumer has discarded from this connection's
// queue so far (ConnStats.Dropped, without a lock): a producer sees by it whether its send, which
// PolicyDropOldest accepts, evicted older messages.
func (c *Conn) Dropped() uint64 { return c.dropped.Load() }

// SendQueueFree returns how many more messages, and payload bytes, the send queue takes now before
// Config.SlowConsumer applies; 0, 0 once the connection is closing. A producer of a large reply
// pages it to fit instead of encoding what could not be queued.
func (c *Conn) SendQueueFree() (messages, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen || c.closing.Load() {
		return 0, 0
	}
	return c.roomLocked()
}

// roomLocked returns the messages and payload bytes the queue takes now. Under PolicyDropOldest
// what eviction would free counts as room; pinned messages and the batch being written do not.
func (c *Conn) roomLocked() (messages, bytes int) {
	cfg := &c.srv.cfg
	messages, bytes = len(c.queue), c.queued
	if cfg.SlowConsumer == PolicyDropOldest {
		for i := range c.queue {
			if !c.queue[i].pinned {
				messages--
				bytes -= c.queue[i].size()
			}
		}
	}
	return max(cfg.SendQueueMessages-messages, 0), max(cfg.SendQueueBytes-bytes, 0)
}

// WaitSendQueue waits until the send queue takes n more payload bytes (at most SendQueueBytes) and
// one more message, the connection starts closing (ErrClosed), or ctx ends. A handler whose replies
// are large calls it first: a peer that pipelines requests faster than it reads the replies is
// then slowed down by TCP (the connection's reader reads nothing while it waits) instead of cut as
// a slow consumer. Under PolicyDropOldest the room eviction would make counts (SendQueueFree).
func (c *Conn) WaitSendQueue(ctx context.Context, n int) error {
	cfg := &c.srv.cfg
	n = min(n, cfg.SendQueueBytes)
	for {
		c.mu.Lock()
		if c.state != stateOpen || c.closing.Load() { // closing: also after CloseNow
			c.mu.Unlock()
			return ErrClosed
		}
		if msgs, free := c.roomLocked(); msgs > 0 && n <= free {
			c.mu.Unlock()
			return nil
		}
		if !c.writing && c.hasWorkLocked() {
			// Sends made during this handler wait for it to return; it is waiting for them.
			c.deferred = false
			c.spawnWriterLocked()
		}
		if c.space == nil {
			c.space = make(chan struct{})
		}
		space := c.space
		c.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// signalSpaceLocked wakes the callers of WaitSendQueue: the queue shrank, or the connection closes.
func (c *Conn) signalSpaceLocked() {
	if c.space != nil {
		close(c.space)
		c.space = nil
	}
}

// Send queues a message for the peer and returns at once; it never waits for the network. The data
// is copied, so the caller may reuse it. Send fails with ErrClosed once the connection is closing,
// and with ErrQueueFull when the queue is full, after applying Config.SlowConsumer.
func (c *Conn) Send(typ MessageType, data []byte) error { return c.send(typ, data, false) }

// SendPinned queues a message as Send does, except that PolicyDropOldest never evicts it to make
// room for newer ones: for a reply the peer waits for, or a notice it must not miss. Under the
// other policies it is Send.
func (c *Conn) SendPinned(typ MessageType, data []byte) error { return c.send(typ, data, true) }

func (c *Conn) send(typ MessageType, data []byte, pinned bool) error {
	if typ != Text && typ != Binary {
		return ErrInvalidMessageType
	}
	if len(data) > c.srv.cfg.SendQueueBytes {
		return ErrMessageTooLarge
	}
	if typ == Text && !utf8.Valid(data) {
		return ErrInvalidUTF8
	}
	m := newFrame(typ, data)
	m.pinned = pinned
	return c.enqueue(m)
}

// SendPrepared queues a prepared message, as Send does, without copying it.
func (c *Conn) SendPrepared(p *PreparedMessage) error {
	if p.m.size() > c.srv.cfg.SendQueueBytes {
		return ErrMessageTooLarge
	}
	return c.enqueue(p.m)
}

// enqueue appends m to the queue, applying the slow-consumer policy when it is full, and wakes the
// writer. It owns m: whatever is not queued is released.
func (c *Conn) enqueue(m outMsg) error {
	cfg := &c.srv.cfg
	n := m.size()
	c.mu.Lock()
	if c.state != stateOpen || c.closing.Load() { // closing: also after CloseNow
		c.mu.Unlock()
		m.release()
		return ErrClosed
	}
	if len(c.queue) >= cfg.SendQueueMessages || c.queued+n > cfg.SendQueueBytes {
		switch cfg.SlowConsumer {
		case PolicyDropOldest:
			if msgs, free := c.roomLocked(); m.pinned && (msgs == 0 || n > free) {
				c.mu.Unlock() // full of what cannot be evicted: refused, and nothing evicted for it
				m.release()
				return ErrQueueFull
			}
			c.evictLocked(n)
		case PolicyDropNewest:
			c.mu.Unlock()
			m.release()
			c.dropped.Add(1)
			c.srv.dropped.Add(1)
			return ErrQueueFull
		default:
			c.closeLocked(&CloseError{Code: CloseTryAgainLater, Reason: slowConsumerReason, Err: ErrSlowConsumer}, true)
			c.mu.Unlock()
			m.release()
			return ErrQueueFull
		}
	}
	c.queue = append(c.queue, m)
	c.queued += n
	c.kickLocked()
	c.mu.Unlock()
	return nil
}

// evictLocked drops the oldest queued messages until n more bytes and one more message fit, or
// nothing queued is left to drop: neither pinned messages nor the batch being written can be
// evicted. A pinned message that would not fit is refused before this runs; an unpinned one is
// queued even then, so the queue may pass its bound by that one message.
func (c *Conn) evictLocked(n int) {
	cfg := &c.srv.cfg
	k, evicted := 0, 0
	for i := range c.queue {
		m := c.queue[i]
		if !m.pinned && (len(c.queue)-evicted >= cfg.SendQueueMessages || c.queued+n > cfg.SendQueueBytes) {
			c.queued -= m.size()
			c.queue[i].release()
			evicted++
			continue
		}
		c.queue[k] = m
		k++
	}
	if evicted > 0 {
		c.signalSpaceLocked()
		clear(c.queue[k:])
		c.queue = c.queue[:k]
		c.dropped.Add(uint64(evicted))
		c.srv.dropped.Add(uint64(evicted))
	}
}

// Close starts the closing handshake: messages already queued are written, then a close frame with
// code and reason (truncated to 123 bytes); the connection ends when the peer answers, or is
// dropped Config.CloseTimeout after Close at the latest, whatever is left unwritten. From Close on,
// nothing the peer sends reaches the handler, and little of it is read at all (see closeReadBudget).
// Close returns at once; Handler.OnClose reports the end. Calling it again, or on a closed
// connection, does nothing. Codes an endpoint may not send return ErrInvalidCloseCode.
func (c *Conn) Close(code CloseCode, reason string) error {
	if !code.Sendable() {
		return ErrInvalidCloseCode
	}
	c.mu.Lock()
	c.closeLocked(&CloseError{Code: code, Reason: TruncateCloseReason(reason)}, false)
	c.mu.Unlock()
	return nil
}

// CloseNow closes the connection at once, without a close frame (the peer sees 1006). Queued
// messages are discarded.
func (c *Conn) CloseNow() {
	c.mu.Lock()
	if c.closeErr == nil {
		c.closeErr = &CloseError{Code: CloseAbnormal, Reason: "closed by server"}
	}
	c.mu.Unlock()
	c.shut(true)
}

// shut cancels the context and closes the socket; the reader then ends the connection. Unless
// hard, a socket that carried a close frame of ours is only half-closed and the reader lingers
// (wire.Close); hard drops it, lingering or not.
func (c *Conn) shut(hard bool) {
	c.closing.Store(true)
	c.mu.Lock()
	c.cancelLocked()
	c.mu.Unlock()
	c.wire.sealed.Store(true)
	if hard {
		c.wire.drop()
	} else {
		_ = c.wire.Close()
	}
}

// closeExpired drops a connection whose close has taken Config.CloseTimeout: the peer did not
// answer, or did not even read what was left to write before our close frame.
func (c *Conn) closeExpired() {
	c.expired.Store(true)
	c.shut(true)
}

// stopCloseTimer stops the close timer, once the connection is gone.
func (c *Conn) stopCloseTimer() {
	c.mu.Lock()
	if c.closeTimer != nil {
		c.closeTimer.Stop()
	}
	c.mu.Unlock()
}

// closeLocked moves an open connection to closing with reason ce; discard drops what is queued
// (the close frame then goes out as soon as the batch in flight is written).
func (c *Conn) closeLocked(ce *CloseError, discard bool) {
	if c.state != stateOpen {
		return
	}
	c.state = stateClosing
	c.closing.Store(true)
	c.closeErr = ce
	if discard {
		c.releaseQueueLocked()
	}
	c.closeMsg = closePayload(ce.Code, ce.Reason)
	// The whole close is bounded from here: what is left to write, our close frame, the peer's
	// answer. So is reading: the reader waits for our close frame to be out (wire.Read), so a
	// heartbeat deadline armed before would only end the close early.
	c.closeTimer = time.AfterFunc(c.srv.cfg.CloseTimeout, c.closeExpired)
	if c.awaitPong.Swap(false) {
		_ = c.wire.Conn.SetReadDeadline(time.Time{})
	}
	c.kickLocked()
	c.cancelLocked()
	c.signalSpaceLocked()
}

// releaseQueueLocked returns every queued buffer to the pool.
func (c *Conn) releaseQueueLocked() {
	c.signalSpaceLocked()
	for i := range c.queue {
		c.queued -= c.queue[i].size()
		c.queue[i].release()
	}
	clear(c.queue)
	c.queue = c.queue[:0]
}

// kickLocked makes sure what is queued gets written: by the writer goroutine, started unless it
// runs already, or, while this connection's handler runs, by the reader itself once the handler
// returns (see handle), which saves a goroutine hand-off per request/response.
func (c *Conn) kickLocked() {
	if c.writing || c.state == stateClosed {
		return
	}
	if c.inHandler.Load() && !c.async {
		c.deferred = true
		return
	}
	c.spawnWriterLocked()
}

// WriteBehind hands what is queued, and what will be queued until the current handler callback
// returns, to the connection's writer goroutine. Writes queued during a callback otherwise wait
// for it to return (the reader writes them then, in one batch, which saves a goroutine hand-off
// per request and reply); a callback about to wait — on a remote call, a lock, a slow hook —
// calls WriteBehind first, so that messages other goroutines queue meanwhile (publications)
// flow instead of filling the queue. The function it returns ends that once the wait is over, so
// that the reply goes out inline again; the callback's return ends it too. It is for use inside
// Handler callbacks; elsewhere it does nothing.
func (c *Conn) WriteBehind() (end func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inHandler.Load() || c.async {
		return func() {}
	}
	c.async = true
	if c.deferred {
		c.deferred = false
		c.kickLocked()
	}
	return c.endWriteBehind
}

func (c *Conn) endWriteBehind() {
	c.mu.Lock()
	c.async = false
	c.mu.Unlock()
}

// spawnWriterLocked starts the writer goroutine; c.writing is true from here until it returns.
func (c *Conn) spawnWriterLocked() {
	c.writing = true
	c.srv.goroutines.Add(1)
	go func() { // owner: the connection; stops when the queue is empty or the socket fails
		defer c.srv.goroutines.Done()
		c.writeLoop()
	}()
}

// hasWorkLocked reports whether anything waits to be written.
func (c *Conn) hasWorkLocked() bool {
	return len(c.queue) > 0 || len(c.pongs) > 0 || c.pingDue || c.closeMsg != nil
}

// touch records that the peer is alive; called by the reader when a frame from the peer is complete.
func (c *Conn) touch() {
	if now := c.srv.clock.Load(); c.lastRead.Load() != now {
		c.lastRead.Store(now)
	}
	if c.awaitPong.Load() && c.awaitPong.CompareAndSwap(true, false) {
		c.restoreReadDeadline()
	}
}

// restoreReadDeadline clears the heartbeat deadline. (A close is bounded by its own timer, not
// by a read deadline that this could wipe: see closeLocked.)
func (c *Conn) restoreReadDeadline() {
	if h := testHookRestore.Load(); h != nil {
		(*h)(c)
	}
	_ = c.wire.Conn.SetReadDeadline(time.Time{})
}
