package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// Defaults for OutboxOptions' zero fields.
const (
	DefaultOutboxEvents    = 100_000
	DefaultOutboxBytes     = 64 << 20
	DefaultOutboxHeld      = 1 << 20
	DefaultOutboxHeldBytes = 256 << 20
	DefaultOutboxRetry     = time.Second
)

// eventOverhead is what the outbox counts for an event besides its bytes (its slice header, its
// slot), and for a held one besides its key and bytes (its map entry, about).
const eventOverhead = 64

// OutboxOptions bound an in-memory outbox; the zero value works.
type OutboxOptions struct {
	// MaxEvents bounds the events queued and not yet acknowledged. Default 100,000.
	MaxEvents int
	// MaxBytes bounds their bytes (each counted with 64 bytes of overhead). Default 64 MiB.
	MaxBytes int64
	// MaxHeld bounds the events held (one per open connection for the gateway). Default 1 Mi.
	MaxHeld int
	// MaxHeldBytes bounds their bytes and keys (each with 64 bytes of overhead). Default 256 MiB.
	MaxHeldBytes int64
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
	if o.Retry <= 0 {
		o.Retry = DefaultOutboxRetry
	}
}

// Outbox is an in-process broker.Outbox: a bounded FIFO of events and a bounded map of held
// ones. Put, Hold and Release take a mutex and copy the event; nothing else. It lives and dies
// with its process: a process that dies loses what was queued and what was held (no other node
// exists to deliver it), and Close forgets both. A Broker has one (Broker.Put and so on); a
// process without a Broker makes its own with NewOutbox.
type Outbox struct {
	opts OutboxOptions

	mu        sync.Mutex // guards everything below
	queue     [][]byte   // queue[head] is the oldest; compacted when head passes half
	head      int
	bytes     int64
	held      map[string][]byte
	heldBytes int64
	closed    bool

	wake chan struct{} // 1-slot: an event was put (one wake per burst)
	turn chan struct{} // 1-slot: taken by the Consume offering events (one at a time)
	done chan struct{} // closed by Close
}

var _ broker.Outbox = (*Outbox)(nil)

// NewOutbox returns an empty in-memory outbox bounded by opts (nil: the defaults).
func NewOutbox(opts *OutboxOptions) *Outbox {
	var o OutboxOptions
	if opts != nil {
		o = *opts
	}
	o.withDefaults()
	return &Outbox{
		opts: o, held: map[string][]byte{},
		wake: make(chan struct{}, 1), turn: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// Put implements broker.Outbox: it queues a copy of event, or refuses with broker.ErrFull when
// MaxEvents or MaxBytes would be passed.
func (o *Outbox) Put(_ context.Context, event []byte) error {
	cost := int64(len(event)) + eventOverhead
	o.mu.Lock()
	switch {
	case o.closed:
		o.mu.Unlock()
		return fmt.Errorf("broker/memory: outbox put: %w", broker.ErrClosed)
	case len(o.queue)-o.head >= o.opts.MaxEvents:
		o.mu.Unlock()
		return fmt.Errorf("broker/memory: outbox put: %d events queued: %w", o.opts.MaxEvents, broker.ErrFull)
	case o.bytes+cost > o.opts.MaxBytes:
		o.mu.Unlock()
		return fmt.Errorf("broker/memory: outbox put: %d of %d bytes queued, %d more: %w", o.bytes, o.opts.MaxBytes, cost, broker.ErrFull)
	}
	o.queue = append(o.queue, append([]byte(nil), event...))
	o.bytes += cost
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default: // a wake is pending already
	}
	return nil
}

// Hold implements broker.Outbox. In one process nobody survives the node to deliver a held
// event: Hold only keeps it (bounded by MaxHeld and MaxHeldBytes, broker.ErrFull beyond), so
// that the memory outbox behaves as a remote one does while its node lives.
func (o *Outbox) Hold(_ context.Context, key string, event []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return fmt.Errorf("broker/memory: outbox hold: %w", broker.ErrClosed)
	}
	cost := int64(len(key)+len(event)) + eventOverhead
	if old, ok := o.held[key]; ok {
		cost -= int64(len(key)+len(old)) + eventOverhead
	} else if len(o.held) >= o.opts.MaxHeld {
		return fmt.Errorf("broker/memory: outbox hold: %d events held: %w", o.opts.MaxHeld, broker.ErrFull)
	}
	if o.heldBytes+cost > o.opts.MaxHeldBytes {
		return fmt.Errorf("broker/memory: outbox hold: %d of %d bytes held: %w", o.heldBytes, o.opts.MaxHeldBytes, broker.ErrFull)
	}
	o.held[key] = append([]byte(nil), event...)
	o.heldBytes += cost
	return nil
}

// Release implements broker.Outbox: it forgets the event held under key.
func (o *Outbox) Release(_ context.Context, key string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return fmt.Errorf("broker/memory: outbox release: %w", broker.ErrClosed)
	}
	if old, ok := o.held[key]; ok {
		delete(o.held, key)
		o.heldBytes -= int64(len(key)+len(old)) + eventOverhead
	}
	return nil
}

// Consume implements broker.Outbox. Calls to Consume take turns: one offers events while the
// others wait for its ctx to end. An event fn refused stays at the head and is offered again
// after Retry. It returns ctx's error, or broker.ErrClosed once the outbox is closed.
func (o *Outbox) Consume(ctx context.Context, fn func(ctx context.Context, event []byte) error) error {
	select {
	case o.turn <- struct{}{}:
		defer func() { <-o.turn }()
	case <-ctx.Done():
		return ctx.Err()
	case <-o.done:
		return fmt.Errorf("broker/memory: outbox consume: %w", broker.ErrClosed)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev, err := o.next(ctx)
		if err != nil {
			return err
		}
		if fn(ctx, ev) != nil {
			select {
			case <-time.After(o.opts.Retry):
				continue
			case <-ctx.Done():
				return ctx.Err()
			case <-o.done:
				return fmt.Errorf("broker/memory: outbox consume: %w", broker.ErrClosed)
			}
		}
		o.pop()
	}
}

// next waits for the head of the queue, which it leaves there.
func (o *Outbox) next(ctx context.Context) ([]byte, error) {
	for {
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return nil, fmt.Errorf("broker/memory: outbox consume: %w", broker.ErrClosed)
		}
		if o.head < len(o.queue) {
			ev := o.queue[o.head]
			o.mu.Unlock()
			return ev, nil
		}
		o.mu.Unlock()
		select {
		case <-o.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-o.done:
			return nil, fmt.Errorf("broker/memory: outbox consume: %w", broker.ErrClosed)
		}
	}
}

// pop removes the head, acknowledged.
func (o *Outbox) pop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.head >= len(o.queue) {
		return
	}
	o.bytes -= int64(len(o.queue[o.head])) + eventOverhead
	o.queue[o.head] = nil
	o.head++
	if o.head == len(o.queue) {
		o.queue, o.head = o.queue[:0], 0
	} else if o.head > len(o.queue)/2 && o.head > 64 {
		n := copy(o.queue, o.queue[o.head:])
		clear(o.queue[n:])
		o.queue, o.head = o.queue[:n], 0
	}
}

// OutboxStats is what an outbox holds.
type OutboxStats struct {
	Queued, Held           int
	QueuedBytes, HeldBytes int64
}

// Stats returns what the outbox holds now.
func (o *Outbox) Stats() OutboxStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return OutboxStats{Queued: len(o.queue) - o.head, Held: len(o.held), QueuedBytes: o.bytes, HeldBytes: o.heldBytes}
}

// Close forgets every event, queued or held, and ends Consume with broker.ErrClosed. Idempotent.
func (o *Outbox) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	o.closed = true
	o.queue, o.head, o.bytes, o.held, o.heldBytes = nil, 0, 0, nil, 0
	close(o.done)
}

// The Broker's broker.Outbox capability: its own Outbox, bounded by Options.Outbox and closed
// with it.
var _ broker.Outbox = (*Broker)(nil)

// Put implements broker.Outbox (see Outbox.Put).
func (b *Broker) Put(ctx context.Context, event []byte) error { return b.outbox.Put(ctx, event) }

// Hold implements broker.Outbox (see Outbox.Hold).
func (b *Broker) Hold(ctx context.Context, key string, event []byte) error {
	return b.outbox.Hold(ctx, key, event)
}

// Release implements broker.Outbox (see Outbox.Release).
func (b *Broker) Release(ctx context.Context, key string) error { return b.outbox.Release(ctx, key) }

// Consume implements broker.Outbox (see Outbox.Consume).
func (b *Broker) Consume(ctx context.Context, fn func(ctx context.Context, event []byte) error) error {
	return b.outbox.Consume(ctx, fn)
}

// Outbox returns the broker's outbox, for its Stats.
func (b *Broker) Outbox() *Outbox { return b.outbox }
