// Package memory is the embedded in-process Broker of package hub: one node, history in memory,
// bounded by count and age per channel. It is the default and needs nothing to run.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// Defaults for Options' zero fields.
const (
	DefaultHistorySize = 100
	DefaultHistoryTTL  = 5 * time.Minute
)

// Options configure the memory broker; the zero value works.
type Options struct {
	// HistorySize is how many publications each channel keeps. Default 100; negative keeps none.
	HistorySize int
	// HistoryTTL is how long a publication is kept. Default 5 minutes. A channel whose history is
	// empty and unused for this long is forgotten; its next stream starts a new epoch.
	HistoryTTL time.Duration
	// now is the clock, for tests.
	now func() time.Time
}

// Broker is the in-memory hub.Broker.
type Broker struct {
	opts    Options
	deliver hub.DeliverFunc

	mu      sync.Mutex
	streams map[string]*stream
	closed  bool

	stop chan struct{}
	done chan struct{}
}

type stream struct {
	mu       sync.Mutex
	epoch    string
	offset   uint64
	entries  []entry // ring, oldest first from head
	head     int
	n        int
	lastUsed time.Time
}

type entry struct {
	pub hub.Publication
	at  time.Time
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
	if o.now == nil {
		o.now = time.Now
	}
	return &Broker{opts: o, streams: map[string]*stream{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// Start implements hub.Broker; it starts the janitor that forgets expired history.
func (b *Broker) Start(_ context.Context, deliver hub.DeliverFunc) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return hub.ErrBrokerClosed
	}
	b.deliver = deliver
	go func() { // owner: the Broker; stopped by Close
		defer close(b.done)
		t := time.NewTicker(max(b.opts.HistoryTTL/4, 10*time.Millisecond))
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

// Close implements hub.Broker.
func (b *Broker) Close(context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	started := b.deliver != nil
	b.mu.Unlock()
	close(b.stop)
	if started {
		<-b.done
	}
	return nil
}

// stream returns the channel's stream, creating it with a new epoch.
func (b *Broker) stream(channel string) (*stream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, hub.ErrBrokerClosed
	}
	s := b.streams[channel]
	if s == nil {
		s = &stream{epoch: newEpoch(), entries: make([]entry, b.opts.HistorySize), lastUsed: b.opts.now()}
		b.streams[channel] = s
	}
	return s, nil
}

// Publish implements hub.Broker. Delivery happens under the stream's lock, so that every channel's
// publications are delivered one at a time, in offset order.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte) (protocol.Position, error) {
	if err := ctx.Err(); err != nil {
		return protocol.Position{}, err
	}
	s, err := b.stream(channel)
	if err != nil {
		return protocol.Position{}, err
	}
	now := b.opts.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now, b.opts.HistoryTTL)
	s.offset++
	p := hub.Publication{Channel: channel, Epoch: s.epoch, Offset: s.offset, Data: data}
	s.lastUsed = now
	if len(s.entries) > 0 {
		s.entries[(s.head+s.n)%len(s.entries)] = entry{pub: p, at: now}
		if s.n < len(s.entries) {
			s.n++
		} else {
			s.head = (s.head + 1) % len(s.entries)
		}
	}
	if b.deliver != nil {
		b.deliver(p)
	}
	return protocol.Position{Epoch: s.epoch, Offset: s.offset}, nil
}

// expire drops entries older than ttl.
func (s *stream) expire(now time.Time, ttl time.Duration) {
	for s.n > 0 && now.Sub(s.entries[s.head].at) > ttl {
		s.entries[s.head] = entry{}
		s.head = (s.head + 1) % len(s.entries)
		s.n--
	}
}

// History implements hub.Broker.
func (b *Broker) History(ctx context.Context, channel string, since *protocol.Position, limit int) (hub.HistoryResult, error) {
	if err := ctx.Err(); err != nil {
		return hub.HistoryResult{}, err
	}
	s, err := b.stream(channel)
	if err != nil {
		return hub.HistoryResult{}, err
	}
	now := b.opts.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now, b.opts.HistoryTTL)
	s.lastUsed = now
	r := hub.HistoryResult{Top: protocol.Position{Epoch: s.epoch, Offset: s.offset}, Complete: true}
	oldest := s.offset - uint64(s.n) + 1 // offset of the oldest entry kept
	from := oldest
	if since != nil {
		switch {
		case since.Epoch != s.epoch || since.Offset > s.offset:
			r.Complete = false
			return r, nil
		case since.Offset+1 < oldest:
			r.Complete = false // some publications after since are gone
		default:
			from = since.Offset + 1
		}
	}
	count := int(s.offset - from + 1)
	if s.offset < from {
		count = 0
	}
	if limit > 0 && count > limit {
		if since != nil {
			r.Complete = false // the caller asked for less than it missed
			count = limit
		} else {
			from += uint64(count - limit)
			count = limit
		}
	}
	r.Publications = make([]hub.Publication, 0, count)
	for i := range count {
		idx := (s.head + int(from-oldest) + i) % len(s.entries)
		r.Publications = append(r.Publications, s.entries[idx].pub)
	}
	return r, nil
}

// Subscribe implements hub.Broker: one process delivers every channel.
func (b *Broker) Subscribe(context.Context, string) error { return nil }

// Unsubscribe implements hub.Broker.
func (b *Broker) Unsubscribe(context.Context, string) error { return nil }

// sweep forgets streams with no history left that nobody used for HistoryTTL.
func (b *Broker) sweep() {
	now := b.opts.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, s := range b.streams {
		s.mu.Lock()
		s.expire(now, b.opts.HistoryTTL)
		idle := s.n == 0 && now.Sub(s.lastUsed) > b.opts.HistoryTTL
		s.mu.Unlock()
		if idle {
			delete(b.streams, name)
		}
	}
}

func newEpoch() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
