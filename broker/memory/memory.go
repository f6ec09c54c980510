package memory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// Defaults for Options' zero fields.
const (
	DefaultHistorySize = 100
	DefaultHistoryTTL  = 5 * time.Minute
	DefaultMaxChannels = 100_000
	DefaultMaxBytes    = 256 << 20
	DefaultDedupWindow = 2 * time.Minute
	DefaultDedupKeys   = 100_000
)

// publishAttempts bounds how often a Publish makes room and tries again: when other publications
// took the room it made, or when a big publication needs more rounds of eviction than one call
// makes (2 MiB in a 4 MiB cap full of one-publication streams takes 4 calls).
const publishAttempts = 16

// Options configure the memory broker; the zero value works.
type Options struct {
	// HistorySize is how many publications each channel keeps. Default 100; negative keeps none.
	HistorySize int
	// HistoryTTL is how long a publication is kept. Default 5 minutes. A channel with no history
	// left and no subscriber is forgotten; its next stream starts a new epoch.
	HistoryTTL time.Duration
	// MaxChannels bounds the streams kept at once: channels with history or subscribers. A new
	// one beyond it replaces the least recently published stream nobody subscribes to (see the
	// package doc). Default 100,000.
	MaxChannels int
	// MaxBytes bounds what the streams hold in all, in bytes: streams, ring slots and payloads as
	// allocated. A publication beyond it evicts the oldest history (see the package doc).
	// Default 256 MiB.
	MaxBytes int64
	// Namespaces give the channels whose names start with their prefixes history bounds of their
	// own (the longest matching prefix wins): HistorySize 0 keeps none, HistoryTTL 0 is
	// HistoryTTL above. Start refuses a list broker.CheckNamespaces faults.
	Namespaces []broker.Namespace
	// DedupWindow is how long PublishOnce remembers a key. Default 2 minutes.
	DedupWindow time.Duration
	// DedupKeys bounds the keys PublishOnce remembers (about 320 bytes each: 32 MB at the
	// default); beyond it the oldest are forgotten first, which shortens the window under that
	// load. Default 100,000.
	DedupKeys int
	// Outbox bounds the broker's event outbox (Broker.Put and so on). Default: see OutboxOptions.
	Outbox OutboxOptions
	// now is the clock, for tests.
	now func() time.Time
}

// Broker is the in-memory broker.Broker.
type Broker struct {
	opts       Options
	optsErr    error         // what is wrong with opts: Start refuses it
	nsLimits   []limits      // by index of opts.Namespaces
	sweepEvery time.Duration // the shortest HistoryTTL of all; the sweep runs 4 times as often
	deliver    broker.DeliverFunc
	bytes      atomic.Int64 // what the streams hold, against MaxBytes
	dedup      dedup        // PublishOnce's keys (dedup.go)

	mu      sync.Mutex // guards streams, closed; taken before a stream's mu
	streams map[string]*stream
	closed  bool

	outbox *Outbox // the broker.Outbox capability (outbox.go)

	stop chan struct{}
	done chan struct{}
}

// New returns a memory broker.
func New(opts *Options) *Broker {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.HistorySize == 0 {
		o.HistorySize = DefaultHistorySize
	}
	if o.HistorySize < 0 {
		o.HistorySize = 0
	}
	if o.HistoryTTL <= 0 {
		o.HistoryTTL = DefaultHistoryTTL
	}
	if o.MaxChannels <= 0 {
		o.MaxChannels = DefaultMaxChannels
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = DefaultDedupWindow
	}
	if o.DedupKeys <= 0 {
		o.DedupKeys = DefaultDedupKeys
	}
	if o.now == nil {
		o.now = time.Now
	}
	b := &Broker{opts: o, streams: map[string]*stream{}, outbox: NewOutbox(&o.Outbox), stop: make(chan struct{}), done: make(chan struct{})}
	b.dedup.keys = map[dedupKey]*once{}
	b.optsErr = broker.CheckNamespaces(o.Namespaces)
	b.sweepEvery = o.HistoryTTL
	b.nsLimits = make([]limits, len(o.Namespaces))
	for i, ns := range o.Namespaces {
		b.nsLimits[i] = limits{size: max(ns.HistorySize, 0), ttl: ns.HistoryTTL}
		if ns.HistoryTTL <= 0 {
			b.nsLimits[i].ttl = o.HistoryTTL
		}
		b.sweepEvery = min(b.sweepEvery, b.nsLimits[i].ttl)
	}
	return b
}

// limits are a channel's history bounds: its namespace's, or the broker's.
type limits struct {
	size int // publications kept; 0: none
	ttl  time.Duration
}

// limitsOf returns the history bounds of channel: those of the namespace with the longest
// prefix it starts with, or the broker's.
func (b *Broker) limitsOf(channel string) limits {
	if i := broker.MatchNamespace(b.opts.Namespaces, channel); i >= 0 {
		return b.nsLimits[i]
	}
	return limits{size: b.opts.HistorySize, ttl: b.opts.HistoryTTL}
}

// Start implements broker.Broker; it starts the janitor that forgets expired history. It refuses
// Options whose Namespaces broker.CheckNamespaces faults.
func (b *Broker) Start(_ context.Context, deliver broker.DeliverFunc) error {
	if b.optsErr != nil {
		return fmt.Errorf("memory: %w", b.optsErr)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return broker.ErrClosed
	}
	b.deliver = deliver
	go func() { // owner: the Broker; stopped by Close
		defer close(b.done)
		t := time.NewTicker(max(b.sweepEvery/4, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.sweep()
			}
		}
	}()
	return nil
}

// Close implements broker.Broker.
// Ready implements broker.Health: an in-process broker is ready until it is closed.
func (b *Broker) Ready(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return broker.ErrClosed
	}
	return nil
}

func (b *Broker) Close(context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	started := b.deliver != nil
	b.mu.Unlock()
	b.outbox.Close()
	close(b.stop)
	if started {
		<-b.done
	}
	return nil
}

// Stats is what the broker holds now.
type Stats struct {
	Channels int   // streams kept
	Bytes    int64 // what the streams hold, as MaxBytes counts it
}

// Stats returns what the broker holds now.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	n := len(b.streams)
	b.mu.Unlock()
	return Stats{Channels: n, Bytes: b.bytes.Load()}
}

// lookup returns the channel's stream, creating it with a new epoch when create is set; nil when
// it does not exist and create is not set.
func (b *Broker) lookup(channel string, create bool) (*stream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, broker.ErrClosed
	}
	s := b.streams[channel]
	if s == nil && create {
		if len(b.streams) >= b.opts.MaxChannels && !b.evictStream() {
			return nil, fmt.Errorf("%w: %d channels kept, each with a subscriber", broker.ErrFull, len(b.streams))
		}
		cost := streamCost(channel)
		if !b.reserve(cost) && !(b.evictBytes(cost, nil) && b.reserve(cost)) {
			return nil, fmt.Errorf("%w: streams hold %d of %d bytes, none to evict", broker.ErrFull, b.bytes.Load(), b.opts.MaxBytes)
		}
		lim := b.limitsOf(channel)
		s = &stream{name: strings.Clone(channel), epoch: newEpoch(), size: lim.size, ttl: lim.ttl} // not a view of the caller's buffer
		b.streams[s.name] = s
	}
	return s, nil
}

// locked returns the channel's stream with its lock held, creating it if create is set; nil (and
// no lock) when it does not exist and create is not set.
func (b *Broker) locked(channel string, create bool) (*stream, error) {
	for {
		s, err := b.lookup(channel, create)
		if s == nil || err != nil {
			return nil, err
		}
		s.mu.Lock()
		if !s.dead {
			return s, nil
		}
		s.mu.Unlock() // freed between the lookup and the lock: look again
	}
}

// Publish implements broker.Broker. Delivery happens under the stream's lock, so that every
// channel's publications are delivered one at a time, in offset order.
//
// A publication that keeps no history (HistorySize < 0, or its namespace's 0) to a channel
// nobody subscribes to reaches no one and creates no stream: it is the first and only of an
// epoch of its own (offset 1), as its history, empty, will say.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte) (broker.Position, error) {
	if err := ctx.Err(); err != nil {
		return broker.Position{}, err
	}
	lim := b.limitsOf(channel)
	keep := lim.size > 0
	if keep {
		if alone := streamCost(channel) + ringCost(min(4, lim.size)) + entryCost(data); alone > b.opts.MaxBytes {
			return broker.Position{}, fmt.Errorf("%w: a publication holding %d bytes, more than MaxBytes (%d)", broker.ErrFull, alone, b.opts.MaxBytes)
		}
	}
	for attempt := 1; ; attempt++ {
		s, err := b.locked(channel, keep)
		if err != nil {
			return broker.Position{}, err
		}
		if s == nil {
			return broker.Position{Epoch: newEpoch(), Offset: 1}, nil
		}
		pos, need := b.publish(s, data)
		if need == 0 {
			return pos, nil
		}
		if attempt == publishAttempts || !b.makeRoom(need, s) { // s unlocked: b.mu comes first
			b.free(s) // if it was made for this publication
			return broker.Position{}, fmt.Errorf("%w: streams hold %d of %d bytes, none to evict", broker.ErrFull, b.bytes.Load(), b.opts.MaxBytes)
		}
	}
}

// publish appends data to s, locked, delivers it and unlocks s. When keeping it would pass
// MaxBytes it does nothing and returns the bytes it needs.
func (b *Broker) publish(s *stream, data []byte) (_ broker.Position, need int64) {
	defer s.mu.Unlock()
	now := b.opts.now()
	b.expire(s, now)
	keep := s.size > 0
	if keep {
		cost := s.pushCost(data, s.size)
		if !b.reserve(cost) {
			return broker.Position{}, cost
		}
	}
	s.offset++
	s.published = now
	p := broker.Publication{Channel: s.name, Epoch: s.epoch, Offset: s.offset, Data: data}
	if keep {
		s.push(entry{pub: p, at: now}, s.size)
	}
	if b.deliver != nil && s.interest {
		b.deliver(p)
	}
	return broker.Position{Epoch: s.epoch, Offset: s.offset}, 0
}

// History implements broker.Broker. It never creates a stream.
func (b *Broker) History(ctx context.Context, channel string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	if err := ctx.Err(); err != nil {
		return broker.HistoryResult{}, err
	}
	s, err := b.locked(channel, false)
	if err != nil {
		return broker.HistoryResult{}, err
	}
	if s == nil { // no stream: nothing was ever published, or all of it is gone
		r := broker.HistoryResult{Complete: since == nil || *since == broker.Position{}}
		return r, nil
	}
	defer s.mu.Unlock()
	b.expire(s, b.opts.now())
	r := broker.HistoryResult{Position: broker.Position{Epoch: s.epoch, Offset: s.offset}, Complete: true}
	oldest := s.offset - uint64(s.n) + 1 // offset of the oldest entry kept
	from := oldest
	if since != nil {
		pos := *since
		if pos == (broker.Position{}) { // asked before the stream existed: from its start
			pos.Epoch = s.epoch
		}
		switch {
		case pos.Epoch != s.epoch || pos.Offset > s.offset:
			r.Complete = false
			return r, nil
		case pos.Offset+1 < oldest:
			r.Complete = false // some publications after since are gone
		default:
			from = pos.Offset + 1
		}
	}
	count := 0
	if s.offset >= from {
		count = int(s.offset - from + 1)
	}
	if limit > 0 && count > limit {
		if since != nil {
			r.More = true // the rest follows from the last one returned
		} else {
			from += uint64(count - limit) // the latest limit
		}
		count = limit
	}
	r.Publications = make([]broker.Publication, 0, count)
	for i := range count {
		idx := (s.head + int(from-oldest) + i) % len(s.entries)
		r.Publications = append(r.Publications, s.entries[idx].pub)
	}
	return r, nil
}

// Subscribe implements broker.Broker: it keeps the channel's stream, and so its epoch and offsets,
// while this node has subscribers, and delivers its publications.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := b.locked(channel, true)
	if err != nil {
		return err
	}
	s.interest = true
	s.mu.Unlock()
	return nil
}

// Unsubscribe implements broker.Broker; a stream with no history left is freed at once.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	s, err := b.locked(channel, false)
	if err != nil || s == nil {
		return err
	}
	s.interest = false
	b.expire(s, b.opts.now())
	empty := s.n == 0
	s.mu.Unlock()
	if empty {
		b.free(s)
	}
	return nil
}

// remove forgets s and frees what it holds. Called with b.mu and s.mu.
func (b *Broker) remove(s *stream) {
	s.dead = true
	delete(b.streams, s.name)
	b.reserve(-s.held())
	for s.n > 0 {
		s.dropOldest()
	}
	s.entries, s.head = nil, 0
}

// expire drops entries older than the TTL and fits the ring. Called with s.mu.
func (b *Broker) expire(s *stream, now time.Time) {
	var freed int64
	for s.n > 0 && now.Sub(s.entries[s.head].at) > s.ttl {
		freed += s.dropOldest()
	}
	if freed > 0 {
		freed += s.fit()
		b.reserve(-freed)
	}
}

// free forgets s if it is still empty and unwatched. It never waits for s with b.mu held: when s
// is busy it waits for it alone and tries again, a few times, then leaves s to the next sweep.
func (b *Broker) free(s *stream) {
	for range 3 {
		b.mu.Lock()
		if s.mu.TryLock() {
			if s.n == 0 && !s.interest && !s.dead {
				b.remove(s)
			}
			s.mu.Unlock()
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		s.mu.Lock() // wait for whoever holds it, without b.mu
		busy := s.n > 0 || s.interest || s.dead
		s.mu.Unlock()
		if busy {
			return
		}
	}
}

// sweep expires history and forgets the streams left empty and unwatched. It takes each stream
// without b.mu, which it holds only to copy the map.
func (b *Broker) sweep() {
	b.mu.Lock()
	streams := make([]*stream, 0, len(b.streams))
	for _, s := range b.streams {
		streams = append(streams, s)
	}
	b.mu.Unlock()
	now := b.opts.now()
	for _, s := range streams {
		s.mu.Lock()
		b.expire(s, now)
		empty := s.n == 0 && !s.interest && !s.dead
		s.mu.Unlock()
		if empty {
			b.free(s)
		}
	}
}

func newEpoch() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
