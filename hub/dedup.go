package hub

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/protocol"
)

// Bounds of PublishOnce's own window, used when the broker is no broker.Deduplicator: a key is
// remembered for PublishOnceWindow on this node, and at most PublishOnceKeys of them (the oldest
// forgotten first beyond), each at most MaxPublishKeyLen bytes: at most about
// PublishOnceKeys × (MaxPublishKeyLen + MaxChannelLen + 150) bytes, some 50 MB, for a flood of
// distinct keys.
const (
	PublishOnceWindow = 5 * time.Minute
	PublishOnceKeys   = 100_000
	MaxPublishKeyLen  = 128
)

// dedupWindow remembers the keys of PublishOnce's recent publications on this node.
type dedupWindow struct {
	mu    sync.Mutex
	m     map[string]*dedupEntry // by channel and key
	order []*dedupEntry          // oldest first, from head
	head  int
}

// dedupEntry is one key's publication: in flight until done is closed, then pos or err.
type dedupEntry struct {
	key  string
	at   time.Time
	done chan struct{}
	pos  broker.Position
	err  error
}

// PublishOnce publishes data on channel as Publish does, once per key: a second call with the
// same channel and key within the deduplication window publishes nothing and returns the first
// one's position (waiting for it while it is in flight). With a broker.Deduplicator the broker
// keeps the window, across the cluster; without, this node does, for PublishOnceWindow and at
// most PublishOnceKeys keys. A publication that failed is not remembered: a retry publishes.
// The key is 1 to MaxPublishKeyLen bytes.
func (h *Hub) PublishOnce(ctx context.Context, channel string, data []byte, key string) (broker.Position, error) {
	if key == "" || len(key) > MaxPublishKeyLen {
		return broker.Position{}, protocol.Errorf(protocol.CodeBadRequest, "idempotency key must be 1 to %d bytes", MaxPublishKeyLen)
	}
	d, ok := h.broker.(broker.Deduplicator)
	if !ok {
		return h.publishOnceLocal(ctx, channel, data, key)
	}
	if err := h.checkPublication(channel, data); err != nil {
		return broker.Position{}, err
	}
	if !h.beginPublish() {
		return broker.Position{}, ErrDraining
	}
	defer h.endPublish()
	start := time.Now()
	pos, err := d.PublishOnce(ctx, channel, append([]byte(nil), data...), key)
	h.published1(start, err)
	if err != nil {
		return pos, brokerError(err)
	}
	return pos, nil
}

// publishOnceLocal is PublishOnce with this node's window.
func (h *Hub) publishOnceLocal(ctx context.Context, channel string, data []byte, key string) (broker.Position, error) {
	if err := h.checkPublication(channel, data); err != nil {
		return broker.Position{}, err
	}
	w := &h.dedup
	k := channel + "\x00" + key
	for {
		w.mu.Lock()
		now := time.Now()
		w.expire(now)
		if e := w.m[k]; e != nil {
			w.mu.Unlock()
			select {
			case <-e.done:
			case <-ctx.Done():
				return broker.Position{}, fmt.Errorf("hub: waiting for the publication of key %q: %w", key, ctx.Err())
			}
			if e.err == nil {
				return e.pos, nil
			}
			continue // it failed and was forgotten: publish ourselves
		}
		e := &dedupEntry{key: k, at: now, done: make(chan struct{})}
		w.add(e)
		w.mu.Unlock()
		pos, err := h.Publish(ctx, channel, data)
		w.mu.Lock()
		e.pos, e.err = pos, err
		if err != nil && w.m[k] == e {
			delete(w.m, k)
		}
		w.mu.Unlock()
		close(e.done)
		return pos, err
	}
}

// add remembers e, forgetting the oldest key beyond PublishOnceKeys. Called with mu held.
func (w *dedupWindow) add(e *dedupEntry) {
	if w.m == nil {
		w.m = map[string]*dedupEntry{}
	}
	if len(w.order)-w.head >= PublishOnceKeys {
		w.forgetOldest()
	}
	w.m[e.key] = e
	w.order = append(w.order, e)
}

// expire forgets the keys older than PublishOnceWindow. Called with mu held.
func (w *dedupWindow) expire(now time.Time) {
	for w.head < len(w.order) && now.Sub(w.order[w.head].at) > PublishOnceWindow {
		w.forgetOldest()
	}
}

func (w *dedupWindow) forgetOldest() {
	e := w.order[w.head]
	w.order[w.head] = nil
	w.head++
	if w.m[e.key] == e {
		delete(w.m, e.key)
	}
	if w.head > len(w.order)/2 && w.head > 1024 { // compact: the slice stays within twice the keys
		w.order = append(w.order[:0], w.order[w.head:]...)
		w.head = 0
	}
}
