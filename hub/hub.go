package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/protocol"
)

// Defaults for Options' zero fields.
const (
	DefaultMaxSubscriptions = 128
	DefaultMaxDataSize      = 64 << 10
	DefaultPingInterval     = 25 * time.Second
	DefaultRecoverLimit     = 1000
	DefaultRequestTimeout   = 5 * time.Second
	DefaultMaxReplyBytes    = 256 << 10
	DefaultRequestRate      = 1000
	DefaultPresenceInterval = 100 * time.Millisecond
	DefaultConnectTimeout   = 10 * time.Second
	DefaultRefreshGrace     = 10 * time.Second
)

// Options configure a Hub; the zero value works.
type Options struct {
	// Connect, when set, makes every wsgate.v1 connection identify itself first: its connect
	// request's token ("" without one; the hook may then look at c.Auth, c.Header) gives its
	// Identity. Until then other requests get protocol.CodeUnauthorized, and a connection that
	// has not connected within ConnectTimeout is closed with protocol.CloseConnectTimeout. An
	// error refuses: a *protocol.Error is the reply, a *Disconnect closes; any other error
	// answers CodeUnauthorized and closes with protocol.CloseUnauthorized. An Identity whose
	// ExpiresAt has passed is refused with protocol.CodeTokenExpired and closed with
	// protocol.CloseTokenExpired (a hook that counts connections should refuse it itself, before
	// counting). Default: nil, anyone is anonymous (UserID names them) and connect is optional.
	Connect func(ctx context.Context, c *wsgate.Conn, token string) (*Identity, error)
	// Refresh checks a refresh request's token for a connected c and returns its new identity
	// (the same user). An error answers the request and leaves the connection as it was, to
	// lapse at its current expiry. Default: nil, refresh answers protocol.CodeNotAvailable.
	Refresh func(ctx context.Context, c *wsgate.Conn, id *Identity, token string) (*Identity, error)
	// ConnectTimeout bounds the time from upgrade to connect when Connect is set. Default 10 s.
	ConnectTimeout time.Duration
	// RefreshGrace is how long after its identity expired a connection may still refresh
	// before it is closed with protocol.CloseTokenExpired. Default 10 s.
	RefreshGrace time.Duration
	// Authorize decides on a request of a connection (id: its Identity, nil when anonymous):
	// subscribe, publish, presence, history, rpc; never ping, connect, refresh or unsubscribe.
	// An error refuses: a *protocol.Error is the reply, a *Disconnect closes, any other error
	// answers protocol.CodeForbidden with its text. Default: allow. It is called on the
	// connection's reader goroutine, without hub locks held.
	Authorize func(ctx context.Context, c *wsgate.Conn, id *Identity, req *protocol.Request) error
	// Publish, when set, sees every client publication after Authorize: it returns the data to
	// publish (data itself, or a replacement), or an error that refuses as Authorize's do.
	Publish func(ctx context.Context, c *wsgate.Conn, id *Identity, channel string, data json.RawMessage) (json.RawMessage, error)
	// RPC answers rpc requests with the result's JSON. Errors answer as Authorize's do. Default:
	// nil, rpc answers protocol.CodeNotAvailable.
	RPC func(ctx context.Context, c *wsgate.Conn, id *Identity, method string, data json.RawMessage) (json.RawMessage, error)
	// Channel gives a channel's options (its namespace's). Default: everything allowed.
	Channel func(channel string) ChannelOptions
	// OnConnect and OnDisconnect are told of every wsgate.v1 connection that connected and of
	// its end, exactly once each, in that order, without hub locks held. With Connect set, that is
	// every connection whose connect succeeded (OnConnect on its reader goroutine, after the
	// server-side subscriptions and before the reply goes out; OnDisconnect from its OnClose);
	// without Connect, every wsgate.v1 connection, at open (id nil) and at close. They must not
	// block: they queue (the gateway's event outbox).
	OnConnect    func(c *wsgate.Conn, id *Identity)
	OnDisconnect func(c *wsgate.Conn, id *Identity)
	// UserID names the user behind a connection without Connect, for presence; a name longer
	// than MaxUserLen bytes is cut. Default: none.
	UserID func(c *wsgate.Conn) string
	// MaxSubscriptions per connection. Default 128.
	MaxSubscriptions int
	// MaxDataSize bounds a publication's data in bytes. Default 64 KiB.
	MaxDataSize int
	// PingInterval is the period of the {"push":"ping"} sent to every wsgate.v1 connection, by
	// which clients that cannot see WebSocket pings (browsers) notice a dead link. Default 25 s;
	// negative disables.
	PingInterval time.Duration
	// RecoverLimit bounds the publications a recovering subscribe may replay; a client that
	// missed more is told it cannot recover. Default 1000.
	RecoverLimit int
	// RequestTimeout bounds the broker calls of one request. Default 5 s.
	RequestTimeout time.Duration
	// MaxReplyBytes bounds a subscribe or history reply. A longer one is paged: it says "more"
	// and the client asks for the rest. A reply is also kept within what the connection's send
	// queue can take at the time, so nothing is encoded that could not be queued. Default 256 KiB;
	// a single publication is always sent whole.
	MaxReplyBytes int
	// RequestRate bounds the requests a connection may make per second, on average; RequestBurst
	// how many it may make at once. Requests beyond get error 203 (rate limited). Default 1000 a
	// second and a burst of 2×MaxSubscriptions or RequestRate, whichever is more; negative
	// disables.
	RequestRate  float64
	RequestBurst int
	// PresenceInterval is how often a channel's joins and leaves are gathered into one presence
	// push to its subscribers that asked for them: the cost of churn on a channel of n such
	// subscribers is at most n pushes per interval, however many join or leave. Default 100 ms.
	PresenceInterval time.Duration
	// PresenceTTL is, in a cluster (a broker with the broker.Cluster capability), how long a node
	// may stay silent before its connections leave every presence list of the other nodes, with
	// leave pushes. Nodes send a heartbeat every PresenceTTL/5, and look for silent ones as
	// often, so a node that died is in presence for at most PresenceTTL + PresenceTTL/5 after
	// its last heartbeat, and its leave pushes follow within a PresenceInterval. Default 5 s.
	PresenceTTL time.Duration
	// Logger, default slog.Default().
	Logger *slog.Logger
}

// Hub routes publications between channels and the connections subscribed to them.
type Hub struct {
	opts    Options
	broker  broker.Broker
	clients clientSet

	mu       sync.RWMutex // guards channels, closed; taken before a channel's mu
	channels map[string]*channel
	closed   bool

	// Publishes in flight, and whether new ones are refused (Drain).
	draining atomic.Bool
	inflight atomic.Int64
	idle     chan struct{} // a token when inflight falls to 0 while draining

	pmu     sync.Mutex // guards the lists below; taken after a channel's mu
	dirty   []*channel // channels with presence changes not pushed yet
	gaps    []gapNote  // subscriptions owed a gap push
	evicted []*client  // clients PolicyDropOldest evicted messages from
	retry   []*channel // channels whose broker Unsubscribe failed

	cl *cluster // presence across nodes; nil on one node

	dl    deadlines   // the connections' connect, expiry and grace deadlines
	dedup dedupWindow // PublishOnce's keys, without a broker.Deduplicator

	metrics hubMetrics // metrics.go

	ping *wsgate.PreparedMessage
	stop chan struct{}
	done chan struct{}
}

// ErrOptions is wrapped by New's error when Options cannot work: a mistake to fix, not a
// broker to wait for.
var ErrOptions = errors.New("hub: invalid Options")

// ErrDraining is returned by Hub.Publish after Drain: the server is shutting down.
var ErrDraining = errors.New("hub: draining, publications refused")

// New starts a Hub on a broker (use broker/memory for one process).
func New(ctx context.Context, b broker.Broker, opts *Options) (*Hub, error) {
	if b == nil {
		return nil, errors.New("hub: a Broker is required (broker/memory for one process)")
	}
	o, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	ping, _ := wsgate.NewPreparedMessage(wsgate.Text, protocol.PingPush)
	h := &Hub{opts: o, broker: b, channels: map[string]*channel{}, idle: make(chan struct{}, 1),
		ping: ping, stop: make(chan struct{}), done: make(chan struct{})}
	h.clients.init()
	h.dl.wake = make(chan struct{}, 1)
	if err := b.Start(ctx, h.deliver); err != nil {
		return nil, fmt.Errorf("hub: starting broker: %w", err)
	}
	if err := h.startCluster(b); err != nil {
		_ = b.Close(ctx)
		return nil, fmt.Errorf("hub: joining the cluster's presence: %w", err)
	}
	go h.loop() // owner: the Hub; stopped by Close
	return h, nil
}

// CheckOptions reports what New would refuse in opts (an error wrapping ErrOptions), without
// starting anything: a program checks its configuration before it connects to a broker.
func CheckOptions(opts *Options) error {
	_, err := withDefaults(opts)
	return err
}

// withDefaults returns opts with the defaults of its zero fields, or why it cannot work.
func withDefaults(opts *Options) (Options, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxSubscriptions < 0 || o.MaxDataSize < 0 || o.RecoverLimit < 0 || o.RequestTimeout < 0 ||
		o.MaxReplyBytes < 0 || o.RequestBurst < 0 || o.PresenceInterval < 0 || o.PresenceTTL < 0 ||
		o.ConnectTimeout < 0 || o.RefreshGrace < 0 {
		return o, fmt.Errorf("%w: fields must not be negative (but PingInterval and RequestRate)", ErrOptions)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxSubscriptions, DefaultMaxSubscriptions)
	def(&o.MaxDataSize, DefaultMaxDataSize)
	def(&o.RecoverLimit, DefaultRecoverLimit)
	def(&o.MaxReplyBytes, DefaultMaxReplyBytes)
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.RequestRate == 0 {
		o.RequestRate = DefaultRequestRate
	}
	def(&o.RequestBurst, max(2*o.MaxSubscriptions, int(o.RequestRate)))
	if o.PresenceInterval == 0 {
		o.PresenceInterval = DefaultPresenceInterval
	}
	if o.PresenceTTL == 0 {
		o.PresenceTTL = DefaultPresenceTTL
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.RefreshGrace == 0 {
		o.RefreshGrace = DefaultRefreshGrace
	}
	if o.PresenceTTL < 5*o.PresenceInterval {
		return o, fmt.Errorf("%w: PresenceTTL %v is under 5 PresenceIntervals (%v): nodes would expire each other between heartbeats", ErrOptions, o.PresenceTTL, 5*o.PresenceInterval)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Drain refuses publications from now on, from clients (error 201, "server shutting down") and
// from Publish (ErrDraining), and waits until those in flight have been queued to their local
// subscribers. Call it before wsgate.Server.Shutdown, so that every publication acknowledged
// before the shutdown reaches every subscriber the shutdown then closes.
func (h *Hub) Drain(ctx context.Context) error {
	h.draining.Store(true)
	for h.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.idle:
		}
	}
	return nil
}

// beginPublish counts a publication in flight; false once draining.
func (h *Hub) beginPublish() bool {
	h.inflight.Add(1)
	if h.draining.Load() {
		h.endPublish()
		return false
	}
	return true
}

func (h *Hub) endPublish() {
	if h.inflight.Add(-1) == 0 && h.draining.Load() {
		select {
		case h.idle <- struct{}{}:
		default:
		}
	}
}

// Close stops the hub's timers and the broker. Connections are the wsgate.Server's to close.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	close(h.stop)
	<-h.done
	if h.cl != nil {
		h.sendCluster(clusterMsg{Kind: "b"}) // the other nodes forget our connections now, not after PresenceTTL
		h.cl.cancel()
	}
	return h.broker.Close(ctx)
}

// loop sends the ping pushes, the gathered presence pushes and the gap pushes due, and retries
// the broker Unsubscribes that failed.
func (h *Hub) loop() {
	defer close(h.done)
	var pingC <-chan time.Time
	if h.opts.PingInterval > 0 {
		t := time.NewTicker(h.opts.PingInterval)
		defer t.Stop()
		pingC = t.C
	}
	pt := time.NewTicker(h.opts.PresenceInterval)
	defer pt.Stop()
	rt := time.NewTicker(time.Second)
	defer rt.Stop()
	var hbC <-chan time.Time
	if h.cl != nil {
		t := time.NewTicker(h.opts.PresenceTTL / 5)
		defer t.Stop()
		hbC = t.C
	}
	// One timer for every connection's deadline, set to the earliest (see deadlines).
	dt := time.NewTimer(time.Hour)
	dt.Stop()
	defer dt.Stop()
	rearm := func(next time.Time) {
		if !next.IsZero() {
			dt.Reset(time.Until(next))
		}
	}
	var buf []*client
	var dues []due
	for {
		select {
		case <-h.stop:
			return
		case <-h.dl.wake:
			next, _ := h.dl.next()
			rearm(next)
		case <-dt.C:
			var next time.Time
			dues, next = h.runDeadlines(time.Now(), dues)
			rearm(next)
		case <-pingC:
			buf = h.clients.snapshot(buf[:0])
			for _, c := range buf {
				dropped := c.conn.Dropped()
				if c.conn.SendPrepared(h.ping) == nil {
					h.checkEvicted(c, dropped)
				}
			}
			clear(buf)
		case <-pt.C:
			h.flushPresence()
			if h.cl != nil && h.cl.wanted.Swap(false) {
				h.sendSnapshot() // after this round's deltas: it holds them
			}
			h.flushEvicted()
			h.flushGaps()
		case now := <-hbC:
			h.heartbeat(now)
		case <-rt.C:
			h.retryWithdrawals()
		}
	}
}

// take empties one of the lists guarded by mu and returns what it held.
func take[T any](mu *sync.Mutex, list *[]T) []T {
	mu.Lock()
	defer mu.Unlock()
	l := *list
	*list = nil
	return l
}

// channel returns the named channel's local state, or nil.
func (h *Hub) channel(name string) *channel {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.channels[name]
}

// Publish publishes JSON data on channel from the server side, as a client's publish would,
// without authorization. Errors are *protocol.Error (bad channel, not JSON, too large, 201
// broker unavailable, 202 broker full: its HTTPStatus says what an HTTP API answers), or
// ErrDraining.
func (h *Hub) Publish(ctx context.Context, channel string, data []byte) (broker.Position, error) {
	if err := h.checkPublication(channel, data); err != nil {
		return broker.Position{}, err
	}
	if !h.beginPublish() {
		return broker.Position{}, ErrDraining
	}
	defer h.endPublish()
	pos, err := h.publish(ctx, channel, append([]byte(nil), data...))
	if err != nil {
		return pos, brokerError(err)
	}
	return pos, nil
}

// checkPublication checks a server-side publication as a client's is checked.
func (h *Hub) checkPublication(channel string, data []byte) error {
	if err := protocol.ValidChannel(channel); err != nil {
		return err
	}
	if !json.Valid(data) || !utf8.Valid(data) { // json.Valid lets invalid UTF-8 through
		return protocol.Errorf(protocol.CodeBadRequest, "data is not JSON in UTF-8")
	}
	if len(data) > h.opts.MaxDataSize {
		return protocol.Errorf(protocol.CodeTooLarge, "data of %d bytes, limit %d", len(data), h.opts.MaxDataSize)
	}
	return nil
}

// History returns up to limit publications of channel after since (nil: the latest ones).
func (h *Hub) History(ctx context.Context, channel string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	if err := protocol.ValidChannel(channel); err != nil {
		return broker.HistoryResult{}, err
	}
	return h.history(ctx, channel, since, limit)
}

// Presence lists the connections subscribed to channel, on every node of a cluster, ordered by
// node and connection.
func (h *Hub) Presence(channel string) []protocol.ClientInfo {
	return h.presence(channel)
}

// Handler serves wsgate.v1 connections and passes every other connection to app (nil: raw
// connections get no handler calls).
func (h *Hub) Handler(app wsgate.Handler) wsgate.Handler { return &handler{h: h, app: app} }

// connID is the stable name of a connection in presence: its ID, after its node's name in a
// cluster.
func (h *Hub) connID(c *wsgate.Conn) string {
	if h.cl != nil {
		return h.connName(h.cl.node, c.ID())
	}
	return h.connName("", c.ID())
}
