package hub

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/protocol"
)

// channel is a channel's local state on this node: its subscribers, which of them are still
// recovering (they hold back live publications until their reply is queued), the broker interest,
// and the presence changes not pushed yet.
//
// Interest: refs counts the subscriptions held or being made (under Hub.mu). The channel stays in
// Hub.channels while refs > 0 or the broker holds our interest, and sem serializes the broker's
// Subscribe and Unsubscribe for it: a new first subscriber waits for a stale Unsubscribe to land,
// and a second subscriber for the first one's Subscribe to succeed or fail.
type channel struct {
	name string
	refs int           // guarded by Hub.mu
	sem  chan struct{} // one slot, held around the broker's Subscribe and Unsubscribe
	live bool          // the broker holds our interest; guarded by sem

	retrying bool // on Hub.retry; guarded by Hub.pmu

	mu      sync.Mutex
	subs    map[*client]*subscription
	order   []*client         // the subscribers by connection id, for presence pages
	events  int               // subscribers that want presence pushes
	changes map[string]change // presence changes not pushed yet, by connection name
	dirty   bool              // in Hub.dirty
}

type subscription struct {
	epoch      string
	last       uint64 // offset of the last publication queued to the client
	recovering bool
	pending    []broker.Publication // live publications that arrived while recovering
	pendingLen int                  // their data bytes, bounded by MaxReplyBytes
	events     bool                 // the client wants presence pushes
	// gap is the offset of the latest publication that could not be queued to the client (0:
	// none since the last one queued); a gap push tells the client when its queue has room.
	// noted says that the subscription is in Hub.gaps already.
	gap   uint64
	noted bool
	// done: the subscribe succeeded (its top is known, its reply or push queued); Subscribed
	// reports only such subscriptions, not one still being made.
	done bool
}

// deliver is the Broker's DeliverFunc: encode once, queue to every local subscriber.
func (h *Hub) deliver(p broker.Publication) {
	ch := h.channel(p.Channel)
	if ch == nil {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if p.Trace != "" && h.opts.Tracer != nil {
		if end := h.opts.Tracer.StartDelivery(p.Channel, p.Trace, p.Offset); end != nil {
			end(len(ch.subs), h.fanOut(ch, p))
			return
		}
	}
	h.fanOut(ch, p)
}

// fanOut queues p to every subscriber of ch, encoded once, and returns to how many it was
// queued. Called with ch.mu held.
func (h *Hub) fanOut(ch *channel, p broker.Publication) (queued int) {
	var msg *wsgate.PreparedMessage
	var drops uint64 // added once per publication, not once per subscriber
	defer func() {
		h.metrics.deliveries.Add(uint64(queued))
		h.metrics.deliveryDrops.Add(drops)
	}()
	for cl, sub := range ch.subs {
		if sub.recovering {
			if len(sub.pending) < h.opts.RecoverLimit && sub.pendingLen+len(p.Data) <= h.opts.MaxReplyBytes {
				sub.pending = append(sub.pending, p)
				sub.pendingLen += len(p.Data)
			} else {
				sub.gap = p.Offset // the client is told, and recovers it from history
				drops++
			}
			continue
		}
		if !sub.accept(p) {
			continue
		}
		if msg == nil {
			var err error
			if msg, err = wsgate.NewPreparedMessage(wsgate.Text, protocol.PubPush(p)); err != nil {
				h.opts.Logger.Error("hub: publication not delivered", "channel", p.Channel, "offset", p.Offset, "err", err)
				return queued
			}
		}
		// A full queue is the connection's policy's business: it closes the connection (1013, the
		// client reconnects and recovers), or drops. A drop is never silent: the next publication
		// queued jumps in offset, and until one is, a gap push is due.
		// With PolicyDropOldest the send succeeds by evicting older messages, maybe the last
		// publication of another channel: every subscription of the client is then owed a check.
		dropped := cl.conn.Dropped()
		switch err := cl.conn.SendPrepared(msg); {
		case err == nil:
			sub.gap = 0
			queued++
			h.checkEvicted(cl, dropped)
		case errors.Is(err, wsgate.ErrQueueFull) || errors.Is(err, wsgate.ErrMessageTooLarge):
			drops++
			sub.gap = p.Offset
			h.noteGap(ch, cl, sub)
		}
	}
	return queued
}

// accept reports whether p is new to the subscription (no duplicate after a recovery) and
// records it as the last one queued.
func (s *subscription) accept(p broker.Publication) bool {
	if p.Epoch == s.epoch && p.Offset <= s.last {
		return false
	}
	s.epoch, s.last = p.Epoch, p.Offset
	return true
}

// acquire returns the named channel with a reference taken, creating it.
func (h *Hub) acquire(name string) (*channel, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("hub closed")
	}
	ch := h.channels[name]
	if ch == nil {
		ch = &channel{name: name, sem: make(chan struct{}, 1), subs: map[*client]*subscription{}}
		h.channels[name] = ch
	}
	ch.refs++
	return ch, nil
}

// interest makes sure the broker holds this node's interest in ch.
func (h *Hub) interest(ctx context.Context, ch *channel) error {
	select {
	case ch.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-ch.sem }()
	if ch.live {
		return nil
	}
	if err := h.broker.Subscribe(ctx, ch.name); err != nil {
		return err
	}
	ch.live = true
	return nil
}

// release gives back a reference to ch; the last one withdraws the broker interest and forgets
// the channel, unless a new subscriber came meanwhile.
func (h *Hub) release(ch *channel) {
	h.mu.Lock()
	ch.refs--
	last := ch.refs == 0
	h.mu.Unlock()
	if last {
		h.withdraw(ch)
	}
}

// withdraw drops the broker interest of a channel nobody holds any more, and forgets it. A failed
// Unsubscribe keeps the channel, with its interest, on Hub.retry: the loop tries again.
func (h *Hub) withdraw(ch *channel) {
	ch.sem <- struct{}{} // a holder is inside one broker call, bounded by RequestTimeout
	defer func() { <-ch.sem }()
	h.mu.RLock()
	unused := ch.refs == 0
	h.mu.RUnlock()
	if unused && ch.live {
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.RequestTimeout)
		err := h.broker.Unsubscribe(ctx, ch.name)
		cancel()
		if err != nil {
			h.opts.Logger.Warn("hub: broker unsubscribe failed; retrying", "channel", ch.name, "err", err)
			h.pmu.Lock()
			if !ch.retrying { // once on the list, however often it fails
				ch.retrying = true
				h.retry = append(h.retry, ch)
			}
			h.pmu.Unlock()
		} else {
			ch.live = false
		}
	}
	h.mu.Lock()
	if ch.refs == 0 && !ch.live && h.channels[ch.name] == ch {
		delete(h.channels, ch.name)
	}
	h.mu.Unlock()
}

// retryWithdrawals tries again the Unsubscribes that failed, at most maxRetries a round, each
// bounded by RequestTimeout: a broker that stays down delays the hub's loop by a bounded time.
func (h *Hub) retryWithdrawals() {
	h.pmu.Lock()
	n := min(len(h.retry), maxRetries)
	retry := slices.Clone(h.retry[:n])
	h.retry = slices.Delete(h.retry, 0, n)
	for _, ch := range retry {
		ch.retrying = false
	}
	h.pmu.Unlock()
	for _, ch := range retry {
		h.withdraw(ch)
	}
}

// maxRetries bounds the failed Unsubscribes retried per round (a second) of the hub's loop: while
// the broker is down, the loop's other work (pings, presence and gap pushes) waits at most one
// RequestTimeout a round.
const maxRetries = 1

// subReq is what a subscribe asks for.
type subReq struct {
	since     *broker.Position // recover from here (nil: live only)
	events    bool             // the client wants presence pushes
	noRecover bool             // the channel's namespace does not recover: recovered false, no replay
	id        uint64           // the request's, for the reply; 0: server side, no reply
	push      bool             // server side on a live connection: a subscribe push instead
	hold      bool             // leave it recovering: the caller queues its reply, then goLive
}

// subscribe adds cl to channel. With since, the publications after it go in the reply (paged to
// fit MaxReplyBytes and the connection's queue); live publications that arrive meanwhile are held
// back and queued after the reply. With id 0 (server side) no reply is sent.
func (h *Hub) subscribe(ctx context.Context, cl *client, name string, r subReq) (*protocol.SubscribeResult, *protocol.Error) {
	if !cl.addSub(name, h.opts.MaxSubscriptions) {
		if cl.isClosed() {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "connection closed")
		}
		if cl.hasSub(name) {
			return nil, protocol.Errorf(protocol.CodeAlreadySubscribed, "already subscribed to %q", name)
		}
		return nil, protocol.Errorf(protocol.CodeLimitExceeded, "at most %d subscriptions per connection", h.opts.MaxSubscriptions)
	}
	ch, err := h.acquire(name)
	if err != nil {
		cl.dropSub(name)
		return nil, protocol.Errorf(protocol.CodeUnavailable, "%v", err)
	}
	if err := h.interest(ctx, ch); err != nil {
		cl.dropSub(name)
		h.release(ch)
		return nil, brokerError(err)
	}
	sub := &subscription{recovering: true, events: r.events}
	ch.mu.Lock()
	ch.subs[cl] = sub
	h.metrics.subscriptions.Add(1)
	ch.insertOrdered(cl)
	if r.events {
		ch.events++
	}
	ch.mu.Unlock()
	// OnClose marks the client closed before it lists the subscriptions to remove (and an
	// unsubscribe drops the name before it looks for the channel): either they find this one and
	// remove it, or we see it here. No ghost is left behind.
	if !cl.live(name) {
		h.removeSub(cl, ch)
		return nil, protocol.Errorf(protocol.CodeBadRequest, "connection closed")
	}
	since, limit := r.since, 1 // without since, only the top position matters
	if r.noRecover {
		since = nil
	}
	if since != nil {
		limit = h.opts.RecoverLimit
	}
	hist, err := h.history(ctx, name, since, limit)
	if err != nil {
		h.removeSub(cl, ch)
		return nil, brokerError(err)
	}

	res := &protocol.SubscribeResult{Epoch: hist.Epoch, Offset: hist.Offset}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.subs[cl] != sub { // unsubscribed or closed meanwhile: removeSub did the rest
		return nil, protocol.Errorf(protocol.CodeNotSubscribed, "unsubscribed from %q while subscribing", name)
	}
	sub.epoch, sub.last, sub.done = hist.Epoch, hist.Offset, true
	if since != nil {
		res.Recovered = hist.Complete && !hist.More
		if res.Recovered {
			h.metrics.recovered.Add(1)
		} else {
			h.metrics.notRecovered.Add(1)
		}
		if res.Recovered {
			res.Publications, res.More = h.page(cl, hist.Publications)
		}
	}
	switch {
	case r.id != 0:
		cl.reply(protocol.SubscribeReply(r.id, *res))
	case r.push:
		cl.reply(subscribePush(name, res.Epoch, res.Offset))
	}
	if !r.hold {
		h.goLiveLocked(ch, cl, sub)
	}
	return res, nil
}

// goLive ends the recovery of cl's subscription to name (one subscribed with hold), once the
// caller's reply is queued. It does nothing if the subscription is gone or live already.
func (h *Hub) goLive(cl *client, name string) {
	ch := h.channel(name)
	if ch == nil {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if sub := ch.subs[cl]; sub != nil && sub.recovering {
		h.goLiveLocked(ch, cl, sub)
	}
}

// goLiveLocked queues the live publications held back while sub was recovering, and makes it
// live. Called with ch.mu held.
func (h *Hub) goLiveLocked(ch *channel, cl *client, sub *subscription) {
	// The live publications held back follow, as far as the queue takes them without its policy
	// applying; the rest is a gap the client fills from history.
	_, free := cl.conn.SendQueueFree()
	for i, p := range sub.pending {
		if !sub.accept(p) {
			continue
		}
		push := protocol.PubPush(p)
		dropped := cl.conn.Dropped()
		if free -= len(push); free < 0 || cl.conn.Send(wsgate.Text, push) != nil {
			sub.gap = max(sub.gap, sub.pending[len(sub.pending)-1].Offset)
			// This one and every later one the subscriber had not had are left to history.
			n := uint64(1)
			for _, q := range sub.pending[i+1:] {
				if q.Epoch != sub.epoch || q.Offset > p.Offset {
					n++
				}
			}
			h.metrics.deliveryDrops.Add(n)
			break
		}
		h.metrics.deliveries.Add(1)
		h.checkEvicted(cl, dropped)
	}
	if sub.gap != 0 {
		h.noteGap(ch, cl, sub)
	}
	sub.pending, sub.pendingLen, sub.recovering = nil, 0, false
	if ch.events > 0 || h.cl != nil {
		h.notePresence(ch, cl, true)
	}
}

// subscribePush tells a client that the server subscribed it to channel, at its top.
func subscribePush(channel, epoch string, offset uint64) []byte {
	b, _ := json.Marshal(struct {
		Push string `json:"push"`
		protocol.SubscribedChannel
	}{"subscribe", protocol.SubscribedChannel{Channel: channel, Epoch: epoch, Offset: offset}})
	return b
}

// unsubscribePush tells a client that the server unsubscribed it from channel.
func unsubscribePush(channel string) []byte {
	b, _ := json.Marshal(struct {
		Push    string `json:"push"`
		Channel string `json:"channel"`
	}{"unsubscribe", channel})
	return b
}

// page returns the longest run of pubs, from the first, that fits one reply: within MaxReplyBytes
// and within what cl's send queue takes now, less replyReserve, which keeps room for the small
// replies of a client that pipelines requests. The first publication goes even alone over
// MaxReplyBytes, if the queue takes it. more tells whether some were left out: with an empty
// page, the client asks again once it has read what is queued.
func (h *Hub) page(cl *client, pubs []broker.Publication) (page []broker.Publication, more bool) {
	msgs, free := cl.conn.SendQueueFree()
	if msgs < 2 {
		return nil, len(pubs) > 0
	}
	free -= protocol.ReplyOverhead + replyReserve
	budget := min(free, h.opts.MaxReplyBytes-protocol.ReplyOverhead)
	n, size := 0, 0
	for _, p := range pubs {
		size += protocol.PubSize(p)
		if size > free || (n > 0 && size > budget) {
			break
		}
		n++
	}
	return pubs[:n], n < len(pubs)
}

// replyReserve is the part of a connection's send queue that paged replies leave free.
const replyReserve = 4 << 10

// insertOrdered adds cl to ch.order. Called with ch.mu held; O(n) copying, O(log n) search.
func (ch *channel) insertOrdered(cl *client) {
	i, _ := slices.BinarySearchFunc(ch.order, cl.conn.ID(), byID)
	ch.order = slices.Insert(ch.order, i, cl)
}

// removeOrdered takes cl out of ch.order. Called with ch.mu held.
func (ch *channel) removeOrdered(cl *client) {
	if i, ok := slices.BinarySearchFunc(ch.order, cl.conn.ID(), byID); ok {
		ch.order = slices.Delete(ch.order, i, i+1)
	}
	if len(ch.order) == 0 {
		ch.order = nil
	}
}

func byID(c *client, id uint64) int { return cmp.Compare(c.conn.ID(), id) }

// brokerError words a broker failure for a reply.
func brokerError(err error) *protocol.Error {
	var perr *protocol.Error
	switch {
	case errors.As(err, &perr):
		return perr
	case errors.Is(err, broker.ErrFull):
		return protocol.Errorf(protocol.CodeFull, "%v", err)
	}
	return protocol.Errorf(protocol.CodeUnavailable, "broker: %v", err)
}

// removeSub takes cl out of ch, giving back its reference; it does nothing if cl is not in ch.
func (h *Hub) removeSub(cl *client, ch *channel) {
	cl.dropSub(ch.name)
	ch.mu.Lock()
	sub, ok := ch.subs[cl]
	if ok {
		delete(ch.subs, cl)
		h.metrics.subscriptions.Add(-1)
		ch.removeOrdered(cl)
		if sub.events {
			ch.events--
		}
		if ch.events > 0 || h.cl != nil {
			h.notePresence(ch, cl, false)
		} else {
			clear(ch.changes)
		}
	}
	ch.mu.Unlock()
	if ok {
		h.release(ch)
	}
}

// unsubscribe removes cl from the named channel; false if it was not subscribed.
func (h *Hub) unsubscribe(cl *client, name string) bool {
	if !cl.hasSub(name) {
		return false
	}
	ch := h.channel(name)
	if ch == nil {
		cl.dropSub(name)
		return true
	}
	h.removeSub(cl, ch)
	return true
}
