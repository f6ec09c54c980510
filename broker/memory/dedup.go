package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wsgate/wsgate/broker"
)

var _ broker.Deduplicator = (*Broker)(nil)

// dedupKey is broker.DedupHash of a channel and a key.
type dedupKey [32]byte

// once is one key's publication: done is closed once pos and err are set.
type once struct {
	done chan struct{}
	pos  broker.Position
	err  error
	at   time.Time // when the key was first seen: it is forgotten DedupWindow later
}

// dedup remembers PublishOnce's keys, in the order they came: at most DedupKeys of them, each
// for DedupWindow.
type dedup struct {
	mu    sync.Mutex
	keys  map[dedupKey]*once
	order []keyed // oldest first from head; holds every entry of keys, and some no longer there
	head  int
}

type keyed struct {
	k dedupKey
	o *once
}

// PublishOnce implements broker.Deduplicator. The broker remembers each key for DedupWindow
// (default 2 minutes) after its first call, and at most DedupKeys keys (default 100,000: beyond,
// the oldest are forgotten first). A call whose key is being published waits for that
// publication (or its ctx); when that one failed, nothing was published and it tries itself.
// A key is remembered by broker.DedupHash of the channel and the key.
func (b *Broker) PublishOnce(ctx context.Context, channel string, data []byte, key string) (broker.Position, error) {
	k, err := broker.DedupHash(channel, key)
	if err != nil {
		return broker.Position{}, fmt.Errorf("memory: %w", err)
	}
	d := &b.dedup
	for {
		if err := ctx.Err(); err != nil {
			return broker.Position{}, err
		}
		d.mu.Lock()
		now := b.opts.now()
		d.expire(now.Add(-b.opts.DedupWindow), b.opts.DedupKeys+1)
		o := d.keys[k]
		if o == nil {
			d.expire(now.Add(-b.opts.DedupWindow), b.opts.DedupKeys) // room for one more
			o = &once{done: make(chan struct{}), at: now}
			d.keys[k] = o
			d.order = append(d.order, keyed{k, o})
			d.mu.Unlock()
			o.pos, o.err = b.Publish(ctx, channel, data)
			if o.err != nil { // nothing published: the key is free again
				d.mu.Lock()
				if d.keys[k] == o {
					delete(d.keys, k)
				}
				d.mu.Unlock()
			}
			close(o.done)
			return o.pos, o.err
		}
		d.mu.Unlock()
		select {
		case <-o.done:
		case <-ctx.Done():
			return broker.Position{}, ctx.Err()
		}
		if o.err == nil {
			return o.pos, nil
		}
	}
}

// expire forgets the keys first seen before since, and the oldest until fewer than limit are
// left. Called with d.mu.
func (d *dedup) expire(since time.Time, limit int) {
	for d.head < len(d.order) {
		f := d.order[d.head]
		if len(d.order)-d.head < limit && !f.o.at.Before(since) {
			break
		}
		if d.keys[f.k] == f.o {
			delete(d.keys, f.k)
		}
		d.order[d.head] = keyed{}
		d.head++
	}
	if d.head > len(d.order)/2 && d.head > 64 { // reuse the slice's front
		n := copy(d.order, d.order[d.head:])
		clear(d.order[n:])
		d.order, d.head = d.order[:n], 0
	}
}
