package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/broker"
)

// Defaults for OutboxOptions' zero fields.
const (
	DefaultOutboxEvents    = 1_000_000
	DefaultOutboxBytes     = 256 << 20
	DefaultOutboxHeld      = 10_000_000
	DefaultOutboxHeldBytes = 2 << 30
	DefaultNodeTTL         = 15 * time.Second
	DefaultOutboxRetry     = time.Second
)

// OutboxOptions configure the broker.Outbox capability; the zero value works. All nodes must
// use the same: the first call to the outbox on a node updates the streams to its own.
type OutboxOptions struct {
	// MaxEvents bounds the events queued in the cluster, not yet acknowledged. Default 1,000,000.
	MaxEvents int64
	// MaxBytes bounds their bytes as the stream stores them. Default 256 MiB.
	MaxBytes int64
	// MaxHeld bounds the events held by all nodes (one per open connection for the gateway).
	// Default 10,000,000.
	MaxHeld int64
	// MaxHeldBytes bounds their bytes. Default 2 GiB.
	MaxHeldBytes int64
	// NodeTTL is how long a node may stay silent (no heartbeat, every NodeTTL/3) before another
	// node declares it lost and queues its held events; and how long an event offered to a node
	// that went silent stays reserved for it. Default 15 s.
	NodeTTL time.Duration
	// Retry is the pause before an event fn refused is offered again. Default 1 s.
	Retry time.Duration
}

func (o *OutboxOptions) withDefaults() {
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultOutboxEvents
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultOutboxBytes
	}
	if o.MaxHeld <= 0 {
		o.MaxHeld = DefaultOutboxHeld
	}
	if o.MaxHeldBytes <= 0 {
		o.MaxHeldBytes = DefaultOutboxHeldBytes
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = DefaultNodeTTL
	}
	if o.Retry <= 0 {
		o.Retry = DefaultOutboxRetry
	}
}

// Names of the outbox's streams, bucket and consumer, after Options.Stream.
const (
	queueSuffix  = "_OUTBOX" // work queue: events to deliver
	heldSuffix   = "_HELD"   // a subject per node and key: events held
	nodesSuffix  = "_NODES"  // key-value bucket: one heartbeat entry per node
	deliverGroup = "deliver" // the durable pull consumer every node shares
)

// dupWindow is how long the queue remembers a message ID: a held event queued twice within it,
// by two claims of the same lost node, is stored once.
const dupWindow = 2 * time.Minute

// errCodeStoreFailed is a stream refusing a message at its bounds (discard new): "maximum
// messages exceeded", "maximum bytes exceeded" (JSStreamStoreFailedF).
const errCodeStoreFailed = 10077

// fetchWait bounds one wait for a queued event; Consume waits again after it.
const fetchWait = 5 * time.Second

// outbox is what the outbox's first call set up on the server.
type outbox struct {
	js          jetstream.JetStream
	queue, held jetstream.Stream
	nodes       jetstream.KeyValue
	cons        jetstream.Consumer
}

// outboxState is the Broker's outbox machinery, set up by the first call (outbox.go, nodes.go).
type outboxState struct {
	lock    chan struct{}          // 1-slot: held while setting up
	cur     atomic.Pointer[outbox] // nil until set up, and again once the server lost it
	rev     atomic.Uint64          // this node's heartbeat entry's revision
	beating bool                   // the heartbeat goroutine runs; under lock
	key     string                 // this node in the bucket and in held subjects
	claims  atomic.Int64           // lost nodes this node took over, for tests
}

func newOutboxState(node string) outboxState {
	return outboxState{lock: make(chan struct{}, 1), key: base64.RawURLEncoding.EncodeToString([]byte(node))}
}

// outbox returns the outbox's streams and consumer, creating them (or updating them to this
// node's options) and registering this node on the first call.
func (b *Broker) outbox(ctx context.Context) (*outbox, error) {
	if ob := b.ob.cur.Load(); ob != nil {
		return ob, nil
	}
	select {
	case b.ob.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, b.unavailable(ctx, "outbox: waiting for its setup", ctx.Err())
	}
	defer func() { <-b.ob.lock }()
	if ob := b.ob.cur.Load(); ob != nil {
		return ob, nil
	}
	if err := b.connected(); err != nil {
		return nil, b.unavailable(ctx, "outbox setup", err)
	}
	cctx, cancel := context.WithTimeout(ctx, max(b.opts.Timeout, 10*time.Second)) // a replicated stream takes a while
	defer cancel()
	o := b.opts.Outbox
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, fmt.Errorf("broker/nats: outbox setup: %w", err)
	}
	ob := &outbox{js: js}
	if ob.queue, err = js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
		Name: b.opts.Stream + queueSuffix, Subjects: []string{b.obq},
		Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardNew,
		MaxMsgs: o.MaxEvents, MaxBytes: o.MaxBytes, Replicas: b.opts.Replicas, Duplicates: dupWindow,
	}); err != nil {
		return nil, b.outboxErr(ctx, "outbox setup: stream "+b.opts.Stream+queueSuffix, err)
	}
	if ob.held, err = js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
		Name: b.opts.Stream + heldSuffix, Subjects: []string{b.obh + ">"},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
		MaxMsgsPerSubject: 1, MaxMsgs: o.MaxHeld, MaxBytes: o.MaxHeldBytes, Replicas: b.opts.Replicas,
	}); err != nil {
		return nil, b.outboxErr(ctx, "outbox setup: stream "+b.opts.Stream+heldSuffix, err)
	}
	if ob.nodes, err = js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{
		Bucket: b.opts.Stream + nodesSuffix, History: 1, Storage: jetstream.FileStorage, Replicas: b.opts.Replicas,
	}); err != nil {
		return nil, b.outboxErr(ctx, "outbox setup: bucket "+b.opts.Stream+nodesSuffix, err)
	}
	// One event reserved at a time in the whole cluster: delivery in the order of the queue,
	// the price being one event in flight (see the package doc).
	if ob.cons, err = js.CreateOrUpdateConsumer(cctx, b.opts.Stream+queueSuffix, jetstream.ConsumerConfig{
		Durable: deliverGroup, AckPolicy: jetstream.AckExplicitPolicy, AckWait: o.NodeTTL,
		MaxAckPending: 1, MaxDeliver: -1,
	}); err != nil {
		return nil, b.outboxErr(ctx, "outbox setup: consumer", err)
	}
	rev, err := b.register(cctx, ob.nodes)
	if err != nil {
		return nil, b.outboxErr(ctx, "outbox setup: registering this node", err)
	}
	b.ob.rev.Store(rev)
	if !b.ob.beating {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, fmt.Errorf("broker/nats: outbox setup: %w", broker.ErrClosed)
		}
		b.wg.Add(1)
		go b.heartbeats() // owner: the Broker; stopped by Close (b.stop), waited for by b.wg
		b.mu.Unlock()
		b.ob.beating = true
	}
	b.ob.cur.Store(ob)
	return ob, nil
}

// forget drops ob when the server no longer has it (its store lost): the next call sets up again.
func (b *Broker) forget(ob *outbox, err error) {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrBucketNotFound) {
		b.ob.cur.CompareAndSwap(ob, nil)
	}
}

// outboxErr maps an error of the outbox's calls: a stream at its bounds is broker.ErrFull, one
// that does not answer broker.ErrUnavailable.
func (b *Broker) outboxErr(ctx context.Context, what string, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStoreFailed:
		return fmt.Errorf("broker/nats: %s: %w: %w", what, broker.ErrFull, err)
	case errors.As(err, &apiErr) && apiErr.Code == 503,
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("broker/nats: %s: %w: %w", what, broker.ErrUnavailable, err)
	}
	return b.unavailable(ctx, what, err)
}

// Put implements broker.Outbox: the event is stored in the work-queue stream (file storage,
// replicated like the publications) once Put returns nil. A queue at MaxEvents or MaxBytes
// refuses it with broker.ErrFull.
func (b *Broker) Put(ctx context.Context, event []byte) error {
	ob, err := b.outbox(ctx)
	if err != nil {
		return err
	}
	return b.queueEvent(ctx, ob, event, "")
}

// queueEvent stores event in the queue, under msgID when not empty (stored once within
// dupWindow).
func (b *Broker) queueEvent(ctx context.Context, ob *outbox, event []byte, msgID string) error {
	if err := b.connected(); err != nil {
		return b.unavailable(ctx, "outbox put", err)
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(b.opts.Stream + queueSuffix)}
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := ob.js.PublishMsg(cctx, &natsgo.Msg{Subject: b.obq, Data: event}, opts...); err != nil {
		b.forget(ob, err)
		return b.outboxErr(ctx, "outbox put", err)
	}
	return nil
}

// heldSubject is where this node holds key's event.
func (b *Broker) heldSubject(key string) string {
	return b.obh + b.ob.key + "." + subjectToken(key)
}

// Hold implements broker.Outbox: the event is stored on a subject of this node's and key's
// (one message per subject: holding again replaces). Beyond MaxHeld or MaxHeldBytes in the
// cluster it refuses with broker.ErrFull.
func (b *Broker) Hold(ctx context.Context, key string, event []byte) error {
	if len(key) > maxNameLen {
		return fmt.Errorf("broker/nats: outbox hold: key of %d bytes, more than %d", len(key), maxNameLen)
	}
	ob, err := b.outbox(ctx)
	if err != nil {
		return err
	}
	if err := b.connected(); err != nil {
		return b.unavailable(ctx, "outbox hold", err)
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	if _, err := ob.js.PublishMsg(cctx, &natsgo.Msg{Subject: b.heldSubject(key), Data: event},
		jetstream.WithExpectStream(b.opts.Stream+heldSuffix)); err != nil {
		b.forget(ob, err)
		return b.outboxErr(ctx, "outbox hold", err)
	}
	return nil
}

// Release implements broker.Outbox: it purges key's subject (one JetStream API call).
func (b *Broker) Release(ctx context.Context, key string) error {
	if len(key) > maxNameLen {
		return fmt.Errorf("broker/nats: outbox release: key of %d bytes, more than %d", len(key), maxNameLen)
	}
	ob, err := b.outbox(ctx)
	if err != nil {
		return err
	}
	if err := b.connected(); err != nil {
		return b.unavailable(ctx, "outbox release", err)
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	if err := ob.held.Purge(cctx, jetstream.WithPurgeSubject(b.heldSubject(key))); err != nil {
		b.forget(ob, err)
		return b.outboxErr(ctx, "outbox release", err)
	}
	return nil
}

// Consume implements broker.Outbox with the durable pull consumer every node shares, which
// reserves one event at a time in the cluster (MaxAckPending 1): while fn runs, the node renews
// the reservation every NodeTTL/3; nil acknowledges the event (a double ack, which the server
// confirms); an error hands it back to be offered again after Retry. A node that dies with an
// event reserved leaves it to another within NodeTTL. While NATS is unreachable Consume waits
// and tries again; it returns ctx's error, or broker.ErrClosed once the broker is closed.
func (b *Broker) Consume(ctx context.Context, fn func(ctx context.Context, event []byte) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b.isClosed() {
			return fmt.Errorf("broker/nats: outbox consume: %w", broker.ErrClosed)
		}
		ob, err := b.outbox(ctx)
		if err == nil {
			var msg jetstream.Msg
			if msg, err = b.nextEvent(ctx, ob); err == nil && msg != nil {
				b.offer(ctx, msg, fn)
				continue
			}
		}
		if err == nil {
			continue // nothing queued within fetchWait
		}
		if ctx.Err() == nil && !b.isClosed() {
			b.opts.Logger.Debug("broker/nats: outbox consume", "err", err)
		}
		select { // NATS unreachable, or the outbox not there yet
		case <-time.After(b.opts.Outbox.Retry):
		case <-ctx.Done():
		case <-b.stop:
		}
	}
}

// nextEvent waits up to fetchWait (less when ctx or the broker ends) for the event the consumer
// reserves for this node; nil when none came.
func (b *Broker) nextEvent(ctx context.Context, ob *outbox) (jetstream.Msg, error) {
	if err := b.connected(); err != nil {
		return nil, err
	}
	fctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()
	msg, err := ob.cons.Next(jetstream.FetchContext(fctx))
	if err == nil {
		return msg, nil
	}
	if ctx.Err() == nil && b.ctx.Err() == nil &&
		(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, natsgo.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages)) {
		return nil, nil
	}
	b.forget(ob, err)
	return nil, err
}

// offer gives msg's event to fn, renewing its reservation while fn runs, and acknowledges it or
// hands it back.
func (b *Broker) offer(ctx context.Context, msg jetstream.Msg, fn func(ctx context.Context, event []byte) error) {
	done, renewed := make(chan struct{}), make(chan struct{})
	go func() { // owner: offer; stopped by close(done), waited for through renewed
		defer close(renewed)
		t := time.NewTicker(b.opts.Outbox.NodeTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress() // lost: the event may be offered to another node too (at least once)
			}
		}
	}()
	err := fn(ctx, msg.Data())
	close(done)
	<-renewed
	if err != nil {
		_ = msg.NakWithDelay(b.opts.Outbox.Retry) // lost: offered again after NodeTTL
		return
	}
	actx, cancel := b.call(context.Background()) // delivered: acknowledge even if ctx just ended
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		b.opts.Logger.Debug("broker/nats: outbox: an acknowledgement was lost; the event will be delivered again", "err", err)
	}
}
