package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// beat is a node's entry in the nodes bucket: its name, and who declared it lost, once one did.
type beat struct {
	Node      string `json:"node"`
	ClaimedBy string `json:"claimed_by,omitempty"`
}

// errClaimed is this node's entry claimed by another node, which is taking its held events.
var errClaimed = errors.New("this node was declared lost; its held events are being queued")

// register writes this node's entry in the bucket (its first, or a new one once it was claimed
// and deleted) and returns its revision. An entry of this node already there, unclaimed, is
// taken as it is.
func (b *Broker) register(ctx context.Context, kv jetstream.KeyValue) (uint64, error) {
	val, _ := json.Marshal(beat{Node: b.node})
	rev, err := kv.Create(ctx, b.ob.key, val)
	if err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
		return rev, err
	}
	e, gerr := kv.Get(ctx, b.ob.key)
	if gerr != nil {
		return 0, err
	}
	var was beat
	if json.Unmarshal(e.Value(), &was) != nil || was.ClaimedBy != "" {
		return 0, errClaimed
	}
	return e.Revision(), nil
}

// observed is what this node saw of another's entry, and since when by its own clock: no
// clock of another machine is trusted.
type observed struct {
	rev   uint64
	since time.Time
}

// heartbeats updates this node's entry every NodeTTL/3, and after each, looks for nodes whose
// entry has not changed for NodeTTL as this node saw it: each it claims and takes over. Runs
// until Close.
func (b *Broker) heartbeats() {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.Outbox.NodeTTL / 3)
	defer t.Stop()
	seen := map[string]observed{}
	lost := false // this node's entry was found claimed: said once
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		ob := b.ob.cur.Load()
		if ob == nil || b.connected() != nil {
			clear(seen) // what was seen before an outage says nothing after it
			continue
		}
		if !b.beat(ob, &lost) {
			clear(seen)
			continue
		}
		if err := b.reap(ob, seen); err != nil {
			clear(seen)
			if b.ctx.Err() == nil {
				b.opts.Logger.Debug("broker/nats: outbox: looking for lost nodes", "err", err)
			}
		}
	}
}

// beat updates this node's entry, with its revision as the expected one. A refusal means
// another node claimed this one (it was silent beyond NodeTTL: partitioned, or stalled): its
// held events were or are being queued as a lost node's, and it registers again once the claim
// is over. It reports whether the node's entry is its own again.
func (b *Broker) beat(ob *outbox, lost *bool) bool {
	ctx, cancel := b.call(b.ctx)
	defer cancel()
	val, _ := json.Marshal(beat{Node: b.node})
	rev, err := ob.nodes.Update(ctx, b.ob.key, val, b.ob.rev.Load())
	if err == nil {
		b.ob.rev.Store(rev)
		return true
	}
	if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyNotFound) {
		b.forget(ob, err)
		return false
	}
	if !*lost {
		*lost = true
		b.opts.Logger.Error("broker/nats: outbox: another node declared this one lost (silent beyond NodeTTL); "+
			"the events it held until then were queued for delivery as a lost node's", "node", b.node)
	}
	if rev, err = b.register(ctx, ob.nodes); err != nil {
		return false
	}
	b.ob.rev.Store(rev)
	*lost = false
	b.opts.Logger.Warn("broker/nats: outbox: this node registered again", "node", b.node)
	return true
}

// reap claims every node whose entry this node saw unchanged for NodeTTL.
func (b *Broker) reap(ob *outbox, seen map[string]observed) error {
	ctx, cancel := b.call(b.ctx)
	defer cancel()
	lister, err := ob.nodes.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return err
	}
	defer func() { _ = lister.Stop() }()
	var keys []string
	for k := range lister.Keys() {
		if k != b.ob.key {
			keys = append(keys, k)
		}
	}
	now, present := time.Now(), make(map[string]bool, len(keys))
	for _, k := range keys {
		e, err := ob.nodes.Get(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		present[k] = true
		o, ok := seen[k]
		if !ok || o.rev != e.Revision() {
			seen[k] = observed{rev: e.Revision(), since: now}
			continue
		}
		if now.Sub(o.since) >= b.opts.Outbox.NodeTTL {
			delete(seen, k) // claimed now, or by another: observed afresh if still there
			b.claim(ob, k, e)
		}
	}
	for k := range seen {
		if !present[k] {
			delete(seen, k)
		}
	}
	return nil
}

// claim declares the node of entry e lost, if no other node did first (the update expects e's
// revision: exactly one claimer), and queues its held events. A claim that fails halfway
// leaves the entry claimed and unchanged: after NodeTTL, some node claims it again and queues
// what is still held (what was queued already is stored once, by its message ID, within two
// minutes).
func (b *Broker) claim(ob *outbox, key string, e jetstream.KeyValueEntry) {
	var was beat
	_ = json.Unmarshal(e.Value(), &was)
	val, _ := json.Marshal(beat{Node: was.Node, ClaimedBy: b.node})
	ctx, cancel := b.call(b.ctx)
	rev, err := ob.nodes.Update(ctx, key, val, e.Revision())
	cancel()
	if err != nil {
		return // another node claimed it first, or it came back
	}
	b.ob.claims.Add(1)
	n, err := b.takeOver(ob, key)
	if err != nil {
		b.opts.Logger.Warn("broker/nats: outbox: queuing a lost node's held events", "lost", was.Node, "queued", n, "err", err)
		return
	}
	ctx, cancel = b.call(b.ctx)
	defer cancel()
	_ = ob.nodes.Delete(ctx, key, jetstream.LastRevision(rev)) // not deleted: claimed again, queues nothing
	b.opts.Logger.Info("broker/nats: outbox: queued a lost node's held events", "lost", was.Node, "events", n)
}

// takeOver queues the events node key held, up to the held stream's last sequence when it
// starts, then purges them: what the node held after (it was not dead, and holds again) stays.
func (b *Broker) takeOver(ob *outbox, key string) (int, error) {
	ctx, cancel := b.call(b.ctx)
	info, err := ob.held.Info(ctx)
	cancel()
	if err != nil {
		return 0, err
	}
	last := info.State.LastSeq
	filter := b.obh + key + ".>"
	n := 0
	for seq := uint64(1); seq <= last; seq++ {
		ctx, cancel := b.call(b.ctx)
		m, err := ob.held.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return n, err
		}
		if m.Sequence > last {
			break
		}
		seq = m.Sequence
		id := "held." + key + "." + strconv.FormatUint(seq, 10)
		if err := b.queueEvent(b.ctx, ob, m.Data, id); err != nil {
			return n, err
		}
		n++
	}
	ctx, cancel = b.call(b.ctx)
	defer cancel()
	if err := ob.held.Purge(ctx, jetstream.WithPurgeSubject(filter), jetstream.WithPurgeSequence(last+1)); err != nil {
		return n, fmt.Errorf("purge: %w", err)
	}
	return n, nil
}
