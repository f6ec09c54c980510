package hub

import (
	"context"
	"sync"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// channel is a channel's local state on this node: its subscribers, and which of them are still
// recovering (they buffer live publications until their history is delivered).
type channel struct {
	name string
	mu   sync.Mutex
	subs map[*client]*subscription
}

type subscription struct {
	epoch      string
	last       uint64 // offset of the last publication queued to the client
	recovering bool
	pending    []Publication // live publications that arrived while recovering
	overflow   bool          // pending outgrew the recover limit
	events     bool          // the client wants join/leave pushes
}

// deliver is the Broker's DeliverFunc: encode once, queue to every local subscriber.
func (h *Hub) deliver(p Publication) {
	h.mu.RLock()
	ch := h.channels[p.Channel]
	h.mu.RUnlock()
	if ch == nil {
		return
	}
	var msg *wsgate.PreparedMessage
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for cl, sub := range ch.subs {
		if sub.recovering {
			if len(sub.pending) < h.opts.RecoverLimit {
				sub.pending = append(sub.pending, p)
			} else {
				sub.overflow = true
			}
			continue
		}
		if !sub.accept(p) {
			continue
		}
		if msg == nil {
			msg, _ = wsgate.NewPreparedMessage(wsgate.Text,
				protocol.PubPush(p.Channel, p.Epoch, protocol.Publication{Offset: p.Offset, Data: p.Data}))
		}
		_ = cl.conn.SendPrepared(msg) // a full queue is the connection's policy's business
	}
}

// accept reports whether p is new to the subscription (no duplicate after a recovery) and
// records it as the last one queued.
func (s *subscription) accept(p Publication) bool {
	if p.Epoch == s.epoch && p.Offset <= s.last {
		return false
	}
	s.epoch, s.last = p.Epoch, p.Offset
	return true
}

// subscribe adds cl to channel. With since, the publications after it are returned for the reply
// (recovered tells whether they are all there); live publications that arrive meanwhile are held
// back and queued after the reply, which the caller sends through reply.
func (h *Hub) subscribe(ctx context.Context, cl *client, name string, since *protocol.Position, events bool, id uint64) (*protocol.SubscribeResult, *protocol.Error) {
	if !cl.addSub(name, h.opts.MaxSubscriptions) {
		if cl.isClosed() {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "connection closed")
		}
		if cl.hasSub(name) {
			return nil, protocol.Errorf(protocol.CodeAlreadySubscribed, "already subscribed to %q", name)
		}
		return nil, protocol.Errorf(protocol.CodeLimitExceeded, "at most %d subscriptions per connection", h.opts.MaxSubscriptions)
	}
	h.mu.Lock()
	ch := h.channels[name]
	first := ch == nil
	if first {
		ch = &channel{name: name, subs: map[*client]*subscription{}}
		h.channels[name] = ch
	}
	ch.mu.Lock()
	sub := &subscription{recovering: true, events: events}
	ch.subs[cl] = sub
	ch.mu.Unlock()
	h.mu.Unlock()

	fail := func(err error) (*protocol.SubscribeResult, *protocol.Error) {
		h.removeSub(cl, ch)
		return nil, protocol.Errorf(protocol.CodeUnavailable, "broker: %v", err)
	}
	if first {
		if err := h.broker.Subscribe(ctx, name); err != nil {
			return fail(err)
		}
	}
	limit := 1 // without since, only the top position matters
	if since != nil {
		limit = h.opts.RecoverLimit
	}
	hist, err := h.broker.History(ctx, name, since, limit)
	if err != nil {
		return fail(err)
	}

	res := &protocol.SubscribeResult{Epoch: hist.Top.Epoch, Offset: hist.Top.Offset}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	sub.epoch, sub.last = hist.Top.Epoch, hist.Top.Offset
	if since != nil {
		res.Recovered = hist.Complete && !sub.overflow
		if res.Recovered {
			for _, p := range hist.Publications {
				res.Publications = append(res.Publications, protocol.Publication{Offset: p.Offset, Data: p.Data})
			}
		}
	}
	if id != 0 {
		_ = cl.conn.Send(wsgate.Text, protocol.Reply(id, res))
	}
	for _, p := range sub.pending {
		if sub.accept(p) {
			_ = cl.conn.Send(wsgate.Text, protocol.PubPush(p.Channel, p.Epoch, protocol.Publication{Offset: p.Offset, Data: p.Data}))
		}
	}
	sub.pending, sub.recovering = nil, false
	ch.pushPresence("join", cl, sub)
	return res, nil
}

// pushPresence queues a join or leave push about cl to the subscribers that asked for them. Called
// with ch.mu held.
func (ch *channel) pushPresence(kind string, about *client, skip *subscription) {
	var msg *wsgate.PreparedMessage
	for cl, sub := range ch.subs {
		if !sub.events || sub == skip || sub.recovering {
			continue
		}
		if msg == nil {
			msg, _ = wsgate.NewPreparedMessage(wsgate.Text, protocol.PresencePush(kind, ch.name, about.info))
		}
		_ = cl.conn.SendPrepared(msg)
	}
}

func (ch *channel) presence() []protocol.ClientInfo {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	out := make([]protocol.ClientInfo, 0, len(ch.subs))
	for cl := range ch.subs {
		out = append(out, cl.info)
	}
	return out
}

// removeSub takes cl out of ch, forgetting the channel when it was the last subscriber.
func (h *Hub) removeSub(cl *client, ch *channel) {
	cl.dropSub(ch.name)
	h.mu.Lock()
	ch.mu.Lock()
	sub, ok := ch.subs[cl]
	delete(ch.subs, cl)
	empty := len(ch.subs) == 0
	if empty && h.channels[ch.name] == ch {
		delete(h.channels, ch.name)
	}
	if ok && !empty {
		ch.pushPresence("leave", cl, sub)
	}
	ch.mu.Unlock()
	h.mu.Unlock()
	if empty {
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.RequestTimeout)
		_ = h.broker.Unsubscribe(ctx, ch.name)
		cancel()
	}
}

// unsubscribe removes cl from the named channel; false if it was not subscribed.
func (h *Hub) unsubscribe(cl *client, name string) bool {
	if !cl.hasSub(name) {
		return false
	}
	h.mu.Lock()
	ch := h.channels[name]
	h.mu.Unlock()
	if ch == nil {
		cl.dropSub(name)
		return true
	}
	h.removeSub(cl, ch)
	return true
}
