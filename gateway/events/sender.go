package events

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/memory"
)

// Defaults for Options' zero fields.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultQueueLen   = 10_000
)

// Options configure a Sender. URL is required.
type Options struct {
	// URL receives every event, one per POST with a JSON body (Event). Errors name it in the
	// log: a secret belongs in Headers, not in its query.
	URL string
	// Outbox queues the events and holds the disconnects of open connections: the broker's,
	// when it has the capability (broker/nats: shared by the cluster, and a lost node's events
	// are delivered by another). Nil: an in-memory one of the Sender's own (memory.NewOutbox,
	// default bounds), which dies with the process.
	Outbox broker.Outbox
	// Timeout bounds one POST, its answer included. Default 5 s.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before another attempt at an event the backend
	// did not acknowledge: it doubles from MinBackoff up to MaxBackoff, and a random part of it
	// (up to half) is left out, so that nodes do not retry in step. Default 100 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Headers are added to every POST (e.g. a secret the backend checks).
	Headers http.Header
	// HTTPClient makes the POSTs. Default: a client of its own. Redirects are never followed:
	// a 3xx is not an acknowledgement.
	HTTPClient *http.Client
	// Tracer, when set, makes each POST a span. Default nil.
	Tracer Tracer
	// Logger receives the outages of the backend and the events dropped. Default slog.Default().
	Logger *slog.Logger
	// Node names this node in the events' IDs: unique in the cluster and new at every start
	// (broker.Cluster's Node()). Default: random.
	Node string
	// QueueLen bounds the calls of Connected and Disconnected whose events have not reached
	// the outbox yet (it is unreachable, or full). Beyond it a call's events are dropped: logged
	// and counted (Stats.Dropped). Default 10,000.
	QueueLen int
}

// Tracer is the seam to a tracing system (the binary's OpenTelemetry adapter): this package
// imports none. StartCall starts the client span of one POST of an event (call "event") and
// adds its trace context to header, the POST's headers; end ends it with the attempt's error.
type Tracer interface {
	StartCall(ctx context.Context, call string, header http.Header) (end func(err error))
}

// Stats count what a Sender did.
type Stats struct {
	// Pending is the calls whose events have not reached the outbox yet.
	Pending int
	// Delivered is the events the backend acknowledged (2xx).
	Delivered uint64
	// Failed is the attempts the backend did not acknowledge (an error, a timeout, a non-2xx).
	Failed uint64
	// Dropped is the calls whose events were dropped: the queue in front of the outbox was full
	// (QueueLen), or a client name was too long.
	Dropped uint64
	// Unheld is the connections whose disconnect could not be held (the outbox's held events
	// at their bound): their disconnect is delivered when they end, but not if this node dies
	// first.
	Unheld uint64
}

// op is one call's work on the outbox, done in order: put, then hold, then release.
type op struct {
	put     []byte // an event to queue
	hold    []byte // the disconnect to hold under key
	release bool   // release key
	key     string
	done    int // steps done (the feeder's)
}

// Sender turns connection lifecycle into events and delivers them to the backend at least
// once. See the package doc.
type Sender struct {
	opts   Options
	outbox broker.Outbox
	own    *memory.Outbox // the outbox made here, closed by Close; nil when given

	mu      sync.Mutex // guards ops, closing
	ops     []op       // FIFO of calls not in the outbox yet; ops[0] is the feeder's
	closing bool

	wake chan struct{} // 1-slot: an op was queued

	feedCtx     context.Context    // the feeder's calls to the outbox
	stopFeed    context.CancelFunc // called by Close once the feeder flushed, or gave up
	ctx         context.Context    // delivery's
	cancel      context.CancelFunc // stops delivery
	fed, served chan struct{}      // closed when the feeder, the deliverer end

	delivered, failed, dropped, unheld atomic.Uint64
	down                               atomic.Bool // the backend is failing: said once
}

// New starts a Sender: a goroutine that moves the events of Connected and Disconnected into
// the outbox, and one that delivers the outbox's events to the backend. ctx bounds nothing
// after New returns (Close stops the Sender). It fails on a URL that is not absolute http(s).
func New(ctx context.Context, opts Options) (*Sender, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("events: the URL (%d bytes) does not parse", len(opts.URL)) // it may hold a secret: not quoted
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("events: URL %q: an absolute http or https URL is required", u.Redacted())
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := opts
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Node == "" {
		buf := make([]byte, 6)
		_, _ = rand.Read(buf)
		o.Node = base64.RawURLEncoding.EncodeToString(buf)
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	client := http.Client{Timeout: o.Timeout}
	if o.HTTPClient != nil {
		client = *o.HTTPClient
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.HTTPClient = &client
	s := &Sender{
		opts: o, outbox: o.Outbox, wake: make(chan struct{}, 1),
		fed: make(chan struct{}), served: make(chan struct{}),
	}
	if s.outbox == nil {
		s.own = memory.NewOutbox(nil)
		s.outbox = s.own
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.feedCtx, s.stopFeed = context.WithCancel(context.Background())
	go s.feed()    // owner: the Sender; stopped by Close (stopFeed), waited for through fed
	go s.deliver() // owner: the Sender; stopped by Close (cancel), waited for through served
	return s, nil
}

// Connected queues the connection's connect event, and holds its disconnect event (reason
// "node lost") for another node to deliver should this one be lost before Disconnected. It
// never blocks on the network: it queues the work for the outbox; beyond QueueLen it drops it,
// logged and counted.
func (s *Sender) Connected(ci ConnectInfo) {
	if ci.Time.IsZero() {
		ci.Time = time.Now()
	}
	if !s.validClient(ci.Client) {
		return
	}
	put, _ := json.Marshal(connectEvent(s.opts.Node, ci))
	hold, _ := json.Marshal(lostEvent(s.opts.Node, ci))
	s.queue(op{put: put, hold: hold, key: ci.Client}, "connect")
}

// Disconnected queues the connection's disconnect event and releases the one held since
// Connected. It never blocks on the network, as Connected. Should its work be dropped, the
// held disconnect stays held: delivered (with node_lost) if this node is lost later, and
// forgotten with the memory outbox.
func (s *Sender) Disconnected(di DisconnectInfo) {
	if di.At.IsZero() {
		di.At = time.Now()
	}
	if !s.validClient(di.Client) {
		return
	}
	put, _ := json.Marshal(disconnectEvent(s.opts.Node, di))
	s.queue(op{put: put, release: true, key: di.Client}, "disconnect")
}

func (s *Sender) validClient(client string) bool {
	if len(client) <= MaxClientLen {
		return true
	}
	s.drop("client name too long", "", "bytes", len(client), "max", MaxClientLen)
	return false
}

// queue appends o for the feeder, or drops it when QueueLen calls wait already, or the Sender
// is closed.
func (s *Sender) queue(o op, what string) {
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		s.drop("the sender is closed", what, "client", o.key)
		return
	case len(s.ops) >= s.opts.QueueLen:
		s.mu.Unlock()
		s.drop("the outbox is unreachable or full, and the queue before it too", what, "client", o.key, "queue", s.opts.QueueLen)
		return
	}
	s.ops = append(s.ops, o)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a wake is pending
	}
}

// drop counts a call whose events are dropped, and logs it at the 1st, 2nd, 4th, 8th... drop,
// so that a long outage does not flood the log.
func (s *Sender) drop(why, what string, args ...any) {
	n := s.dropped.Add(1)
	if bits.OnesCount64(n) == 1 {
		s.opts.Logger.Error("events: events dropped: "+why, append(args, "type", what, "dropped", n)...)
	}
}

// Stats returns what the Sender did so far.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	pending := len(s.ops)
	s.mu.Unlock()
	return Stats{
		Pending: pending, Delivered: s.delivered.Load(), Failed: s.failed.Load(),
		Dropped: s.dropped.Load(), Unheld: s.unheld.Load(),
	}
}

// Close stops taking events, lets the queued calls reach the outbox until ctx ends, and stops
// delivery. With an in-memory outbox (its own, or broker/memory's) it first waits, until ctx
// ends, for the backend to take every queued event: what is left then dies with the process,
// logged. A NATS outbox keeps what it holds: other nodes deliver it, and this node's held
// disconnects once it counts as lost. Idempotent; the first call's ctx bounds the wait.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		<-s.served
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}: // the feeder sees closing once the queue is empty
	default:
	}
	var err error
	select {
	case <-s.fed:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.stopFeed()
	<-s.fed
	if local := s.local(); local != nil {
		for err == nil && local.Stats().Queued > 0 {
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
	}
	s.cancel()
	<-s.served
	if local := s.local(); local != nil {
		if st := local.Stats(); st.Queued > 0 {
			s.opts.Logger.Error("events: closed with events undelivered in an in-memory outbox: they are lost with the process", "events", st.Queued)
		}
	}
	if s.own != nil {
		s.own.Close()
	}
	s.mu.Lock()
	left := len(s.ops)
	s.mu.Unlock()
	if left > 0 {
		s.opts.Logger.Error("events: closed before every call's events reached the outbox: they are lost", "calls", left)
	}
	if err != nil {
		return fmt.Errorf("events: close: %w", err)
	}
	return nil
}

// feed moves the queued calls' work into the outbox, in order, each step retried with backoff
// until the outbox takes it; a hold refused for the outbox's bound is given up (counted as
// Unheld). It ends when Close finds the queue empty, or gives up waiting.
func (s *Sender) feed() {
	defer close(s.fed)
	ctx := s.feedCtx
	failures := 0
	var (
		cur  op   // a copy of s.ops[0], with the feeder's progress: only the feeder pops it
		have bool // cur is s.ops[0]
	)
	for {
		s.mu.Lock()
		if !have && len(s.ops) == 0 {
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return
			}
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if !have {
			cur, have = s.ops[0], true
		}
		s.mu.Unlock()
		err := s.step(ctx, &cur)
		if err == nil {
			have, failures = false, 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		if failures == 1 || bits.OnesCount(uint(failures)) == 1 {
			s.opts.Logger.Warn("events: the outbox refuses events; retrying", "err", err, "failures", failures)
		}
		select {
		case <-time.After(s.backoff(failures)):
		case <-ctx.Done():
			return
		}
	}
}

// step does what is left of o, the queue's head (put, hold, release, in that order); the head
// leaves the queue once all is done. A step refused is tried again by the next call.
func (s *Sender) step(ctx context.Context, o *op) error {
	for ; o.done < 3; o.done++ {
		var err error
		switch {
		case o.done == 0 && o.put != nil:
			err = s.outbox.Put(ctx, o.put)
		case o.done == 1 && o.hold != nil:
			if err = s.outbox.Hold(ctx, o.key, o.hold); errors.Is(err, broker.ErrFull) {
				if n := s.unheld.Add(1); bits.OnesCount64(n) == 1 {
					s.opts.Logger.Error("events: a disconnect could not be held (the outbox's bound): it is lost if this node dies first",
						"client", o.key, "err", err, "unheld", n)
				}
				err = nil
			}
		case o.done == 2 && o.release:
			err = s.outbox.Release(ctx, o.key)
		}
		if err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.ops[0] = op{}
	s.ops = s.ops[1:]
	if len(s.ops) == 0 {
		s.ops = nil // let the backing array go
	}
	s.mu.Unlock()
	return nil
}

// backoff is the wait before attempt n+1 after n failures: MinBackoff doubled n-1 times, at
// most MaxBackoff, of which a random part up to half is left out.
func (s *Sender) backoff(n int) time.Duration {
	d := s.opts.MaxBackoff
	if n < 40 {
		d = min(s.opts.MinBackoff<<(n-1), s.opts.MaxBackoff)
		if d <= 0 {
			d = s.opts.MaxBackoff
		}
	}
	return d - jitter(d/2)
}

// local returns the in-memory outbox the Sender delivers from, nil for a remote one.
func (s *Sender) local() *memory.Outbox {
	switch o := s.outbox.(type) {
	case *memory.Outbox:
		return o
	case *memory.Broker:
		return o.Outbox()
	}
	return nil
}
