package nats

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/broker"
)

// Defaults for Options' zero fields.
const (
	DefaultStream      = "WSGATE"
	DefaultPrefix      = "wsgate"
	DefaultReplicas    = 1
	DefaultHistorySize = 100
	DefaultHistoryTTL  = 5 * time.Minute
	DefaultMaxBytes    = 1 << 30
	DefaultTimeout     = 2 * time.Second
	DefaultCheck       = 5 * time.Second
)

// Options configure the NATS broker. The zero value connects to nats://127.0.0.1:4222.
type Options struct {
	// URL is a comma-separated list of nats:// URLs of the cluster; ignored when Conn is set.
	// Default natsgo.DefaultURL.
	URL string
	// Conn is an existing connection (e.g. in-process to an embedded server). The broker does not
	// close it, and installs its reconnect and error handlers on it (calling those set before):
	// a handler set on it later must call the broker's, or subscribed channels will not catch up
	// after a reconnect or a slow consumer. Prefer a connection made with natsgo.ReconnectBufSize(-1): otherwise a
	// publication made while it reconnects may be buffered, sent later and stored after Publish
	// gave up.
	Conn *natsgo.Conn
	// ConnectOptions are extra options for the connection the broker makes from URL.
	ConnectOptions []natsgo.Option
	// Stream is the JetStream stream's name. Default "WSGATE".
	Stream string
	// Prefix is the first token(s) of every subject the broker uses. Default "wsgate".
	Prefix string
	// Replicas is the stream's replica count: 1 for one server, 3 for a 3-node cluster.
	// Default 1.
	Replicas int
	// HistorySize is how many publications each channel keeps. Default 100.
	HistorySize int
	// HistoryTTL is how long a publication is kept. Default 5 minutes.
	HistoryTTL time.Duration
	// MaxBytes bounds the stream's size in bytes; beyond it the oldest publications of all
	// channels go first. Default 1 GiB.
	MaxBytes int64
	// Node names this node in the cluster; Node() adds a random suffix new at every start.
	// Default: random.
	Node string
	// Timeout bounds one call to NATS: a publication's acknowledgement, a history read.
	// Default 2 s.
	Timeout time.Duration
	// CheckInterval is how often the node reads the top of every channel it subscribes to
	// (batched: one direct get for up to 128 channels), and catches up any channel
	// whose top is ahead of what it delivered: a publication whose republication was lost and
	// that no later one follows reaches the node within it. Negative: never. Default 5 s.
	CheckInterval time.Duration
	// Logger receives what the broker cannot return to a caller (a failed catch-up after a
	// gap). Default slog.Default().
	Logger *slog.Logger
	// Outbox configures the broker.Outbox capability (the gateway's connect and disconnect
	// events). Default: see OutboxOptions.
	Outbox OutboxOptions
}

func (o *Options) withDefaults() {
	if o.URL == "" {
		o.URL = natsgo.DefaultURL
	}
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Replicas <= 0 {
		o.Replicas = DefaultReplicas
	}
	if o.HistorySize <= 0 {
		o.HistorySize = DefaultHistorySize
	}
	if o.HistoryTTL <= 0 {
		o.HistoryTTL = DefaultHistoryTTL
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Node == "" {
		o.Node = randomID(6)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheck
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Outbox.withDefaults()
}

// check refuses a stream name or prefix NATS could misread: both are made of letters, digits,
// '_' and '-' (the prefix may have several such tokens joined by '.').
func (o *Options) check() error {
	if !literal(o.Stream) {
		return fmt.Errorf("broker/nats: stream name %q: letters, digits, '_' and '-' only", o.Stream)
	}
	for _, tok := range strings.Split(o.Prefix, ".") {
		if !literal(tok) {
			return fmt.Errorf("broker/nats: prefix %q: tokens of letters, digits, '_' and '-' joined by '.'", o.Prefix)
		}
	}
	return nil
}

func literal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Broker is a broker.Broker and a broker.Cluster on NATS JetStream. See the package doc.
type Broker struct {
	opts Options
	nc   *natsgo.Conn
	own  bool   // the broker made nc and closes it
	node string // Node()

	in, out, x string // subject prefixes: "<prefix>.in." and so on
	obq, obh   string // the outbox's queue subject and held subjects' prefix (outbox.go)
	ob         outboxState

	deliver broker.DeliverFunc

	mu      sync.Mutex // guards closed, started, chans, subs, listens; taken after a subState's
	closed  bool
	started bool
	chans   map[string]*pubChan    // publication state by channel, bounded (publish.go)
	subs    map[string]*subState   // by delivery subject (deliver.go)
	listens map[*listener]struct{} // Listen's subscriptions, cancelled by Close (cluster.go)

	checkNow chan struct{}        // a check of every channel's top is due (check.go)
	advisory *natsgo.Subscription // the stream's leader elections, which call for a check
	reads    chan struct{}        // a semaphore of maxReads: catch-ups' and checks' reads (deliver.go)
	msgs     chan *natsgo.Msg     // every channel subscription delivers here; read by the dispatcher
	stop     chan struct{}        // closed by Close: stops the dispatcher
	ctx      context.Context      // cancelled by Close: stops the catch-ups' reads
	done     context.CancelFunc
	wg       sync.WaitGroup // the dispatcher, the checker and catch-ups

	lose         func(broker.Publication) bool // tests: drop a received publication, as core NATS may
	pauseCatchUp func()                        // tests: called as a catch-up starts
	checkBytes   int                           // tests: the bytes a check's answer is cut at
}

var _ interface {
	broker.Broker
	broker.Cluster
	broker.Outbox
} = (*Broker)(nil)

// New returns a broker connected to NATS (or on opts.Conn). It creates nothing on the server:
// Start does.
func New(opts *Options) (*Broker, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.withDefaults()
	if err := o.check(); err != nil {
		return nil, err
	}
	b := &Broker{
		opts:     o,
		node:     o.Node + "-" + randomID(6),
		in:       o.Prefix + inPart,
		out:      o.Prefix + outPart,
		x:        o.Prefix + xPart,
		obq:      o.Prefix + outboxQueue,
		obh:      o.Prefix + outboxHeld,
		chans:    map[string]*pubChan{},
		subs:     map[string]*subState{},
		listens:  map[*listener]struct{}{},
		reads:    make(chan struct{}, maxReads),
		checkNow: make(chan struct{}, 1),
		msgs:     make(chan *natsgo.Msg, msgQueueLen),
		stop:     make(chan struct{}),
	}
	b.ob = newOutboxState(b.node)
	b.ctx, b.done = context.WithCancel(context.Background())
	if o.Conn != nil {
		b.nc = o.Conn
		b.hook()
		return b, nil
	}
	copts := []natsgo.Option{
		natsgo.Name("wsgate " + b.node),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectBufSize(-1), // never send later what Publish gave up on
		// A link that dies without a reset (a partition, a host lost) is found in 3 pings, not
		// after nats.go's default of 2 minutes × 2: until then nothing reaches this node's
		// subscribers and nothing tells them.
		natsgo.PingInterval(5 * time.Second),
		natsgo.MaxPingsOutstanding(3),
	}
	copts = append(copts, o.ConnectOptions...)
	nc, err := natsgo.Connect(o.URL, copts...)
	if err != nil {
		b.done()
		return nil, fmt.Errorf("%w: connect to %s: %w", broker.ErrUnavailable, o.URL, err)
	}
	b.nc, b.own = nc, true
	b.hook()
	return b, nil
}

// hook installs the broker's reconnect and error handlers on its connection, after those it
// had: after a reconnect, or when nats.go dropped messages of a subscription (a slow
// consumer), subscribed channels catch up from history.
func (b *Broker) hook() {
	prevReconnect, prevErr := b.nc.Opts.ReconnectedCB, b.nc.Opts.AsyncErrorCB
	b.nc.SetReconnectHandler(func(nc *natsgo.Conn) {
		if prevReconnect != nil {
			prevReconnect(nc)
		}
		b.reconnected()
	})
	b.nc.SetErrorHandler(func(nc *natsgo.Conn, sub *natsgo.Subscription, err error) {
		if prevErr != nil {
			prevErr(nc, sub, err)
		}
		if sub != nil && errors.Is(err, natsgo.ErrSlowConsumer) {
			b.dropped(sub)
		}
	})
}

// Start implements broker.Broker: it creates the stream, or updates it when Options changed,
// and starts delivery.
func (b *Broker) Start(ctx context.Context, deliver broker.DeliverFunc) error {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return fmt.Errorf("broker/nats: start: %w", broker.ErrClosed)
	case b.started:
		b.mu.Unlock()
		return errors.New("broker/nats: started twice")
	}
	b.mu.Unlock()
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("broker/nats: start: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, max(b.opts.Timeout, 10*time.Second)) // a replicated stream takes a while
	defer cancel()
	stream, err := js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
		Name:              b.opts.Stream,
		Subjects:          []string{b.in + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: int64(b.opts.HistorySize),
		MaxAge:            b.opts.HistoryTTL,
		MaxBytes:          b.opts.MaxBytes,
		Replicas:          b.opts.Replicas,
		AllowDirect:       true,
		RePublish:         &jetstream.RePublish{Source: b.in + ">", Destination: b.out + ">"},
	})
	if err != nil {
		return b.unavailable(ctx, "start: create or update stream "+b.opts.Stream, err)
	}
	// A replicated stream answers once it has a leader: wait for it, so that publications work
	// when Start returns.
	for info := stream.CachedInfo(); info.Cluster != nil && info.Cluster.Leader == ""; {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-cctx.Done():
			return b.unavailable(ctx, "start: stream "+b.opts.Stream+" has no leader", cctx.Err())
		}
		if info, err = stream.Info(cctx); err != nil {
			return b.unavailable(ctx, "start: stream "+b.opts.Stream, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return fmt.Errorf("broker/nats: start: %w", broker.ErrClosed)
	case b.started:
		return errors.New("broker/nats: started twice")
	}
	b.deliver, b.started = deliver, true
	// A new leader may have acknowledged publications whose republication the old one never
	// sent, or sent while this node's server was cut from it: check every channel's top.
	if b.advisory, err = b.nc.Subscribe(leaderElected+b.opts.Stream, func(*natsgo.Msg) { b.checkSoon() }); err != nil {
		b.opts.Logger.Warn("broker/nats: no check after the stream's leader elections", "err", err)
	}
	b.wg.Add(2)
	go b.dispatch() // owner: the Broker; stopped by Close (b.stop), waited for by b.wg
	go b.checks()   // owner: the Broker; stopped by Close (b.stop), waited for by b.wg
	return nil
}

// Node implements broker.Cluster.
func (b *Broker) Node() string { return b.node }

// Close implements broker.Broker: it drops every subscription and listener's interest, stops the
// dispatcher and catch-ups and waits for them, and closes the connection if the broker made it.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs, listens, advisory := b.subs, b.listens, b.advisory
	b.subs, b.listens = map[string]*subState{}, map[*listener]struct{}{}
	b.mu.Unlock()
	if advisory != nil {
		_ = advisory.Unsubscribe()
	}
	for _, s := range subs {
		s.drop()
	}
	for l := range listens {
		l.cancel()
	}
	close(b.stop)
	b.done()
	b.wg.Wait()
	if b.own {
		b.nc.Close()
	}
	return nil
}

// isClosed reports whether Close was called.
func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// call bounds one call to NATS by Timeout, within ctx.
func (b *Broker) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.opts.Timeout)
}

// unavailable maps err of a call under ctx (the caller's): the caller's cancellation stays
// itself; anything that says NATS could not be reached in time, the caller's deadline included,
// wraps broker.ErrUnavailable.
func (b *Broker) unavailable(ctx context.Context, what string, err error) error {
	if ctx != nil && errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("broker/nats: %s: %w", what, ctx.Err())
	}
	if b.isClosed() || errors.Is(err, natsgo.ErrConnectionClosed) && b.own {
		return fmt.Errorf("broker/nats: %s: %w", what, broker.ErrClosed)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, natsgo.ErrTimeout),
		errors.Is(err, natsgo.ErrNoResponders), errors.Is(err, natsgo.ErrDisconnected),
		errors.Is(err, natsgo.ErrConnectionClosed), errors.Is(err, natsgo.ErrConnectionReconnecting),
		errors.Is(err, natsgo.ErrReconnectBufExceeded), errors.Is(err, natsgo.ErrConnectionDraining),
		errors.Is(err, natsgo.ErrInvalidConnection), errors.Is(err, errNotConnected):
		return fmt.Errorf("broker/nats: %s: %w: %w", what, broker.ErrUnavailable, err)
	}
	return fmt.Errorf("broker/nats: %s: %w", what, err)
}

// errNotConnected is a connection that is not up, or a JetStream that cannot serve the stream.
var errNotConnected = errors.New("nats: not connected")

// connected refuses a call while the connection is not up, rather than letting nats.go buffer
// it to send after a reconnect, when its caller gave up.
func (b *Broker) connected() error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	if b.nc.Status() != natsgo.CONNECTED {
		return errNotConnected
	}
	return nil
}

func randomID(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return base64.RawURLEncoding.EncodeToString(buf)
}
