package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/protocol"
)

// Defaults for the zero fields of Options.
const (
	DefaultMinDelay    = 500 * time.Millisecond
	DefaultMaxDelay    = 30 * time.Second
	DefaultPingTimeout = 50 * time.Second // twice the server's {"push":"ping"} period
)

const (
	// stableAfter: a connection that lasted this long restarts the backoff at its first delay,
	// so a node that accepts and drops at once does not get a fast reconnect loop.
	stableAfter = 5 * time.Second
	// writeTimeout bounds the writes of Run's own requests (subscribe, history).
	writeTimeout = 10 * time.Second
)

// Errors of a Session, stable for errors.Is.
var (
	// ErrNotConnected: Publish or RPC found no ready connection (Run is reconnecting, waiting
	// for its connect reply, not started, or over). The request was not sent.
	ErrNotConnected = errors.New("pubsub: not connected")
	// ErrDisconnected: the connection was lost after Publish sent its request and before the
	// reply. The publication may have been made.
	ErrDisconnected = errors.New("pubsub: connection lost before the reply")
	// ErrStarted: Subscribe after Run, or Run twice.
	ErrStarted = errors.New("pubsub: the session has started")
	// ErrSubscribed: Subscribe twice to one channel.
	ErrSubscribed = errors.New("pubsub: already subscribed")
	// ErrUnauthorized ends Run when the server refuses the connect for good: 109, or 110 (token
	// expired) again with a fresh token. It wraps the server's *protocol.Error.
	ErrUnauthorized = errors.New("pubsub: unauthorized")
)

// Position is a place in a channel's stream: its epoch and the offset of a publication.
type Position = protocol.Position

// Publication is one publication delivered to OnPublication.
type Publication struct {
	Channel string
	Epoch   string
	Offset  uint64
	Data    json.RawMessage // JSON; the callee's to keep
	// Recovered is true when it came from the server's history rather than live: missed while
	// disconnected, or skipped by the server for this connection.
	Recovered bool
}

// Subscribed is a subscribe the server accepted: the first one, or one on a new connection.
type Subscribed struct {
	Channel string
	Epoch   string
	Offset  uint64    // the channel's top when subscribed; recovered publications up to it follow
	Since   *Position // the position recovered from, nil for a fresh subscribe
	// Recovered is true when every publication after Since follows; false with a Since means
	// some are lost (another epoch: a node that does not share the history, or a restart).
	Recovered    bool
	Resubscribed bool   // after a reconnect
	URL          string // the endpoint of the connection
	// Server is true when the server subscribed it (at connect, from the token's channels, or
	// with a subscribe push), not this session's Subscribe.
	Server bool
}

// Connected is the server's answer to a connect: who the connection is.
type Connected struct {
	URL        string
	Client     string        // the connection's name on the server
	User       string        // "" for anonymous
	ExpiresIn  time.Duration // how long the identity lasts; 0 for ever
	Subscribed []string      // the channels the server subscribed the connection to
}

// Gap says that the publications of Channel after Since, up to and including (Epoch, Offset),
// cannot be had (history no longer holds them, or refused them for good); delivery goes on after.
type Gap struct {
	Channel string
	Since   Position
	Epoch   string
	Offset  uint64
}

// Options configures a Session. The zero value works; each zero field takes the default its
// comment gives. Callbacks run on Run's goroutine, one at a time; nil ones are not called.
type Options struct {
	// Dial configures each connection (headers, timeouts, TLS); its Subprotocols are replaced by
	// wsgate.v1. Default: client's defaults.
	Dial *client.Options
	// MinDelay and MaxDelay bound the wait before a reconnect: attempt n waits a random time
	// below min(MaxDelay, MinDelay×2^(n−1)) (full jitter), unless the last dial was refused with
	// Retry-After (503, 429): then what it asked, up to client.MaxRetryAfter, plus up to a second
	// of jitter. Defaults 500 ms and 30 s.
	MinDelay, MaxDelay time.Duration
	// MaxAttempts is how many rounds over the endpoints may find none answering, in a row,
	// before Run gives up. Default 0: never.
	MaxAttempts int
	// InOrder makes the connections try the endpoints in the order given. Default: the first
	// from a random one, and after a loss from a random one of the others (the lost one last),
	// to spread clients over the nodes.
	InOrder bool
	// PingTimeout is how long a connection may stay without any frame from the server (which
	// pushes a ping every 25 s) before it is taken as dead and dropped. Default 50 s; negative
	// disables.
	PingTimeout time.Duration
	// Random is uniform in [0, 1), for the first endpoint and the jitter. Default math/rand/v2.
	Random func() float64
	// Token is the first connection's token. With it, or with GetToken, every connection sends
	// connect first, and nothing else before its reply. Default: none, no connect.
	Token string
	// GetToken gives a fresh token: before a connection that needs one (none yet, expired, after
	// a close 4501, or once more after a connect refused with 110), and for every refresh, which
	// the session makes by itself a little before the expiry and at once on the server's refresh
	// push. "" connects without a token. It is called on Run's goroutine before a dial (an error
	// fails that attempt: backoff), and on a goroutine of the connection for refreshes; ctx ends
	// with the session or the connection.
	GetToken func(ctx context.Context) (string, error)

	OnConnect      func(url string)            // a connection opened; connect and the subscribes follow
	OnConnected    func(Connected)             // the server accepted the connect
	OnDisconnect   func(url string, err error) // it ended: a *wsgate.CloseError, 1006 when lost
	OnSubscribed   func(Subscribed)            // before the recovered publications it announces
	OnPublication  func(Publication)           // every publication, per channel in offset order, once
	OnGap          func(Gap)                   // publications that cannot be had
	OnUnsubscribed func(channel string)        // the server ended a subscription (a push, or not made again at connect)
	// OnError: the server refused a subscribe (a 2xx code: retried with backoff; 1xx: the
	// subscription ends), or refused for good the history a catch-up needed (then OnGap follows);
	// with channel "", a failed GetToken or refresh (tried again with backoff, or left to lapse).
	OnError func(channel string, err error)
}

// Session is a wsgate.v1 client of one or several endpoints; see the package documentation.
type Session struct {
	urls []string
	o    Options
	dial client.Options

	mu      sync.Mutex // guards the fields below
	started bool
	conn    *client.Conn // nil while not connected
	ready   bool         // conn may carry requests: connected, or no connect needed
	nextID  uint64
	pending map[uint64]*pending

	// Owned by Run's goroutine once it runs.
	subs   map[string]*sub
	order  []*sub // in Subscribe order
	url    string // the endpoint of the connection
	tasks  chan func()
	done   chan struct{} // closed when the connection's loop ends
	timers map[*time.Timer]struct{}
	tok    tokens
	conn1  connState
}

// pending is a request awaiting its reply: Publish waits on reply, Run's own requests have fn,
// called on Run's goroutine.
type pending struct {
	reply chan result
	fn    func(result)
}

type result struct {
	raw json.RawMessage
	err error // a *protocol.Error, or ErrDisconnected
}

// New makes a session of the endpoints urls (ws:// or wss://, at least one). opts may be nil.
func New(urls []string, opts *Options) (*Session, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("%w: no URL", client.ErrBadURL)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MinDelay < 0 || o.MaxDelay < 0 || o.MaxAttempts < 0 {
		return nil, fmt.Errorf("%w: negative delay or attempts", client.ErrBadOptions)
	}
	if o.MinDelay == 0 {
		o.MinDelay = DefaultMinDelay
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = max(DefaultMaxDelay, o.MinDelay)
	}
	if o.MaxDelay < o.MinDelay {
		return nil, fmt.Errorf("%w: MaxDelay below MinDelay", client.ErrBadOptions)
	}
	if o.PingTimeout == 0 {
		o.PingTimeout = DefaultPingTimeout
	}
	if o.Random == nil {
		o.Random = rand.Float64
	}
	var d client.Options
	if o.Dial != nil {
		d = *o.Dial
	}
	d.Subprotocols = []string{protocol.Subprotocol}
	return &Session{urls: slices.Clone(urls), o: o, dial: d, subs: map[string]*sub{}, tok: tokens{cur: o.Token, have: o.Token != ""}}, nil
}

// Subscribe adds a subscription to channel, made on every connection of Run: from since if not
// nil (a position saved earlier), then from the last publication delivered. Call it before Run.
func (s *Session) Subscribe(channel string, since *Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return ErrStarted
	}
	if s.subs[channel] != nil {
		return fmt.Errorf("%w: %q", ErrSubscribed, channel)
	}
	if err := protocol.ValidChannel(channel); err != nil {
		return err
	}
	sb := &sub{channel: channel}
	if since != nil {
		p := *since
		sb.pos = &p
	}
	s.subs[channel] = sb
	s.order = append(s.order, sb)
	return nil
}

// Publish publishes data (one JSON value) on channel and returns its position. It needs an open
// connection (ErrNotConnected otherwise: not sent), and fails with ErrDisconnected when the
// connection is lost before the reply (it may have been made), or with the server's
// *protocol.Error. Do not call it from a callback of Options.
func (s *Session) Publish(ctx context.Context, channel string, data json.RawMessage) (Position, error) {
	if !json.Valid(data) {
		return Position{}, errors.New("pubsub: publish: data is not one JSON value")
	}
	raw, err := s.call(ctx, protocol.Request{Op: protocol.OpPublish, Channel: channel, Data: data})
	var pos Position
	if err == nil {
		err = json.Unmarshal(raw, &pos)
	}
	return pos, err
}

// RPC calls method of the application's backend (the server's RPC hook) with data (one JSON
// value, or nil for none) and returns its result. Errors as Publish's.
func (s *Session) RPC(ctx context.Context, method string, data json.RawMessage) (json.RawMessage, error) {
	if data != nil && !json.Valid(data) {
		return nil, errors.New("pubsub: rpc: data is not one JSON value")
	}
	return s.call(ctx, protocol.Request{Op: protocol.OpRPC, Method: method, Data: data})
}

// call sends req on the ready connection and waits for its result.
func (s *Session) call(ctx context.Context, req protocol.Request) (json.RawMessage, error) {
	reply := make(chan result, 1)
	c, id := s.register(&pending{reply: reply}, false)
	if c == nil {
		return nil, ErrNotConnected
	}
	req.ID = id
	b, err := json.Marshal(req)
	if err == nil {
		err = c.Write(ctx, wsgate.Text, b)
	}
	if err != nil {
		s.forget(id)
		if errors.Is(err, client.ErrClosed) {
			err = ErrNotConnected
		}
		return nil, err
	}
	select {
	case r := <-reply:
		return r.raw, r.err
	case <-ctx.Done():
		s.forget(id)
		return nil, ctx.Err()
	}
}

// register gives p an id on the ready connection (or just open, for connect: early), which it
// returns; nil when there is none.
func (s *Session) register(p *pending, early bool) (*client.Conn, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil || !s.ready && !early {
		return nil, 0
	}
	s.nextID++
	s.pending[s.nextID] = p
	return s.conn, s.nextID
}

func (s *Session) forget(id uint64) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// Run connects and serves the subscriptions until ctx ends (it then closes the connection with
// 1000 and returns nil), the server closes with a terminal code (a *wsgate.CloseError), or
// MaxAttempts rounds in a row find no endpoint answering (an error wrapping the last connection's
// end, if any, and the dial errors). A URL or Options that cannot work end it at once.
func (s *Session) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrStarted
	}
	s.started = true
	s.mu.Unlock()

	n := len(s.urls)
	next := 0 // the endpoint the next round starts with
	if !s.o.InOrder && n > 1 {
		next = min(int(s.o.Random()*float64(n)), n-1)
	}
	var lost error // how the last connection ended
	lostAt := -1   // the endpoint it was on
	failed, backoff := 0, 0
	told := time.Duration(-1) // the wait a refusal asked for (Retry-After), if the last dial got one
	for first := true; ; first = false {
		if !first {
			backoff++
			wait := s.delay(backoff)
			if told >= 0 {
				wait = told
			}
			if !sleep(ctx, wait) {
				return nil
			}
		}
		order := endpointOrder(n, next, lostAt)
		rotated := make([]string, n)
		for k, j := range order {
			rotated[k] = s.urls[j]
		}
		err := s.prepareToken(ctx) // before the dial: connect goes out at once, well within the server's connect timeout
		var c *client.Conn
		var i int
		if err == nil {
			c, i, err = client.DialAny(ctx, rotated, &s.dial)
		}
		if ctx.Err() != nil {
			if c != nil {
				c.CloseNow()
			}
			return nil
		}
		told = retryAfter(err, s.o.Random)
		if err != nil {
			if errors.Is(err, client.ErrBadURL) || errors.Is(err, client.ErrBadOptions) {
				return err
			}
			if failed++; s.o.MaxAttempts > 0 && failed >= s.o.MaxAttempts {
				if lost != nil {
					return fmt.Errorf("pubsub: %w; then %w", lost, err)
				}
				return err
			}
			continue
		}
		failed = 0
		at := order[i]
		opened := time.Now()
		err = s.serve(ctx, c, s.urls[at])
		var ce *wsgate.CloseError
		switch {
		case ctx.Err() != nil:
			return nil
		case !errors.As(err, &ce) || !ce.Code.Reconnectable():
			return err
		}
		lost = err
		if time.Since(opened) >= stableAfter {
			backoff = 0
		}
		// The others first, from a random one so that the clients of a lost node spread over
		// the others instead of all landing on the next; the one just lost last.
		next, lostAt = (at+1)%n, at
		if !s.o.InOrder && n > 2 {
			next = (at + 1 + min(int(s.o.Random()*float64(n-1)), n-2)) % n
		}
	}
}

// endpointOrder lists the n endpoints to try: from next round the circle, the one at lost (if
// any) last.
func endpointOrder(n, next, lost int) []int {
	order := make([]int, 0, n)
	for k := range n {
		if j := (next + k) % n; j != lost {
			order = append(order, j)
		}
	}
	if lost >= 0 {
		order = append(order, lost)
	}
	return order
}

// delay is the wait before reconnect attempt n (1, 2, …): full jitter below an exponential ceiling.
func (s *Session) delay(n int) time.Duration {
	ceiling := s.o.MaxDelay
	if n < 32 {
		ceiling = min(s.o.MaxDelay, s.o.MinDelay<<(n-1))
	}
	return time.Duration(s.o.Random() * float64(ceiling))
}

// retryAfter is the wait that the refusals in a dial's error asked for: the shortest Retry-After
// of a 503 or 429 answer among its endpoints', plus a jitter uniform in [0, 1 s) (Retry-After
// counts whole seconds, and the clients told the same second should not all come back at its
// start); -1 when none asked, and the backoff applies.
func retryAfter(err error, random func() float64) time.Duration {
	shortest := time.Duration(-1)
	var walk func(error)
	walk = func(e error) {
		switch u := e.(type) {
		case *client.HandshakeError:
			if (u.StatusCode == http.StatusServiceUnavailable || u.StatusCode == http.StatusTooManyRequests) &&
				u.RetryAfter > 0 && (shortest < 0 || u.RetryAfter < shortest) {
				shortest = u.RetryAfter
			}
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	if shortest < 0 {
		return -1
	}
	return shortest + time.Duration(random()*float64(time.Second))
}

// sleep waits d, or less if ctx ends first; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// frame is one message of the server: a reply (ID, Result or Error) or a push.
type frame struct {
	ID      uint64          `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *protocol.Error `json:"error"`
	Push    string          `json:"push"`
	Channel string          `json:"channel"`
	Epoch   string          `json:"epoch"`
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data"`
}

type read struct {
	data []byte
	err  error
}

// serve runs one connection: subscribe, then hand frames, timers and requests their turn until
// the connection ends (its *wsgate.CloseError) or ctx does (nil, after a close handshake).
func (s *Session) serve(ctx context.Context, c *client.Conn, url string) error {
	frames := make(chan read)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owner: serve; reads until the connection ends, handing frames over until done; waited below
		defer wg.Done()
		for {
			_, data, err := c.Read(context.Background())
			select {
			case frames <- read{data, err}:
			case <-done: // nobody listens: keep reading, so a close handshake completes
			}
			if err != nil {
				return
			}
		}
	}()
	s.mu.Lock()
	s.conn, s.nextID, s.pending = c, 0, map[uint64]*pending{}
	s.mu.Unlock()
	s.url, s.tasks, s.done, s.timers = url, make(chan func()), done, map[*time.Timer]struct{}{}
	connCtx, cancelConn := context.WithCancel(ctx)
	s.conn1 = connState{ctx: connCtx}
	var end error
	defer func() {
		close(done)
		cancelConn()
		for t := range s.timers {
			t.Stop()
		}
		switch {
		case end == nil: // ctx ended: a close handshake, bounded by Options.Dial.CloseTimeout
			_ = c.Close(wsgate.CloseNormal, "")
		case errors.Is(end, ErrUnauthorized):
			_ = c.Close(protocol.CloseUnauthorized, "unauthorized")
		default:
			c.CloseNow()
		}
		wg.Wait()
		s.conn1.wg.Wait() // the GetToken calls of the connection: their ctx has ended
		s.disconnected(url, end)
	}()

	call(s.o.OnConnect, url)
	if s.tok.enabled(s.o) {
		s.connect(ctx, s.tok.cur, false)
	} else {
		s.setReady()
		s.restore(ctx, nil) // without connect the server keeps no subscription for this session
		s.subscribeAll(ctx)
	}
	var idle *time.Timer
	var idleC <-chan time.Time // nil, never ready, without a ping timeout
	if s.o.PingTimeout > 0 {
		idle = time.NewTimer(s.o.PingTimeout)
		defer idle.Stop()
		idleC = idle.C
	}
	for {
		select {
		case r := <-frames:
			if r.err != nil {
				end = closeError(r.err)
				return end
			}
			if idle != nil {
				idle.Reset(s.o.PingTimeout)
			}
			s.handle(ctx, r.data)
		case fn := <-s.tasks:
			fn()
		case <-idleC:
			end = &wsgate.CloseError{Code: wsgate.CloseAbnormal, Reason: fmt.Sprintf("no frame from the server for %v", s.o.PingTimeout)}
			return end
		case <-ctx.Done():
			return nil
		}
		if s.conn1.fail != nil {
			end = s.conn1.fail
			return end
		}
	}
}

// closeError is how a connection ended, as Read reports it.
func closeError(err error) error {
	var ce *wsgate.CloseError
	if errors.As(err, &ce) {
		return ce
	}
	return &wsgate.CloseError{Code: wsgate.CloseAbnormal, Err: err}
}

// disconnected forgets the connection: pending publishes fail, subscriptions wait for the next.
func (s *Session) disconnected(url string, err error) {
	s.mu.Lock()
	pend := s.pending
	s.conn, s.pending, s.ready = nil, nil, false
	s.mu.Unlock()
	var ce *wsgate.CloseError
	if errors.As(err, &ce) && ce.Code == protocol.CloseTokenExpired {
		s.tok.stale = true // the next connection asks GetToken first
	}
	for _, p := range pend {
		if p.reply != nil {
			p.reply <- result{err: ErrDisconnected}
		}
	}
	for _, sb := range s.subs {
		sb.reset()
	}
	if err == nil {
		err = &wsgate.CloseError{Code: wsgate.CloseNormal}
	}
	if s.o.OnDisconnect != nil {
		s.o.OnDisconnect(url, err)
	}
}

// handle takes one frame: a push for a subscription, or a reply.
func (s *Session) handle(ctx context.Context, data []byte) {
	var f frame
	if json.Unmarshal(data, &f) != nil {
		return // not wsgate.v1: nothing to do with it
	}
	if f.Push != "" {
		sb := s.subs[f.Channel]
		switch {
		case sb != nil && (f.Push == "pub" || f.Push == "gap"):
			s.pushed(ctx, sb, push{gap: f.Push == "gap", epoch: f.Epoch, offset: f.Offset, data: f.Data})
		case f.Push == "refresh":
			s.refresh(ctx)
		case f.Push == "subscribe" && protocol.ValidChannel(f.Channel) == nil && s.isReady():
			s.serverSubscribed(ctx, protocol.SubscribedChannel{Channel: f.Channel, Epoch: f.Epoch, Offset: f.Offset}, false)
		case f.Push == "unsubscribe" && sb != nil:
			s.ended(sb)
		}
		return
	}
	s.mu.Lock()
	p := s.pending[f.ID]
	delete(s.pending, f.ID)
	s.mu.Unlock()
	if p == nil {
		return
	}
	r := result{raw: f.Result}
	if f.Error != nil {
		r.err = f.Error
	}
	if p.reply != nil {
		p.reply <- r
	} else {
		p.fn(r)
	}
}

// request sends one of Run's own requests; fn gets its reply on Run's goroutine. A write that
// fails ends the connection, which the reader reports.
func (s *Session) request(ctx context.Context, req protocol.Request, fn func(result)) {
	c, id := s.register(&pending{fn: fn}, req.Op == protocol.OpConnect)
	if c == nil {
		return
	}
	req.ID = id
	b, err := json.Marshal(req)
	if err != nil {
		panic(err) // our own request, without data: cannot happen
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	_ = c.Write(ctx, wsgate.Text, b)
}

// later runs fn on Run's goroutine after d, unless the connection ends first.
func (s *Session) later(d time.Duration, fn func()) {
	tasks, done := s.tasks, s.done
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		select {
		case tasks <- func() { delete(s.timers, t); fn() }:
		case <-done:
		}
	})
	s.timers[t] = struct{}{}
}

// call calls a callback of Options if set.
func call[T any](fn func(T), v T) {
	if fn != nil {
		fn(v)
	}
}
