package hub

import (
	"cmp"
	"errors"
	"slices"
	"strconv"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// Presence changes are gathered per channel and pushed once per PresenceInterval, as one
// {"push":"presence"} with the connections that joined and left: churn on a channel with n
// subscribers that want them costs at most n pushes per interval, not n per join or leave. The
// changes kept are bounded by the channel's subscribers (one entry per connection at most: a join
// and a leave of the same connection within one interval cancel out).

// notePresence records that cl joined or left ch. Called with ch.mu held.
func (h *Hub) notePresence(ch *channel, cl *client, joined bool) {
	if ch.changes == nil {
		ch.changes = map[*client]bool{}
	}
	if prev, ok := ch.changes[cl]; ok && prev != joined {
		delete(ch.changes, cl) // joined and left within one interval: nobody needs to know
	} else {
		ch.changes[cl] = joined
	}
	if !ch.dirty {
		ch.dirty = true
		h.pmu.Lock()
		h.dirty = append(h.dirty, ch)
		h.pmu.Unlock()
	}
}

// noteGap schedules a gap push to cl about ch, unless one is scheduled already. Called with ch.mu
// held.
func (h *Hub) noteGap(ch *channel, cl *client, sub *subscription) {
	if sub.noted {
		return
	}
	sub.noted = true
	h.pmu.Lock()
	h.gaps = append(h.gaps, gapNote{ch, cl})
	h.pmu.Unlock()
}

type gapNote struct {
	ch *channel
	cl *client
}

// flushGaps sends the gap pushes due, to the subscribers whose queue takes them now; the others
// wait for the next round. A subscription has at most one note pending (subscription.noted).
func (h *Hub) flushGaps() {
	gaps := take(&h.pmu, &h.gaps)
	for _, g := range gaps {
		g.ch.mu.Lock()
		if sub := g.ch.subs[g.cl]; sub != nil && sub.noted {
			sub.noted = false
			if sub.gap != 0 {
				dropped := g.cl.conn.Dropped()
				err := g.cl.conn.SendPinned(wsgate.Text, protocol.GapPush(g.ch.name, sub.epoch, sub.gap))
				switch {
				case err == nil:
					sub.gap = 0
					h.checkEvicted(g.cl, dropped)
				case errors.Is(err, wsgate.ErrQueueFull):
					h.noteGap(g.ch, g.cl, sub)
				}
			}
		}
		g.ch.mu.Unlock()
	}
}

// checkEvicted notes an eviction if cl's dropped count moved since before: a send PolicyDropOldest
// accepted by evicting older messages. Every send of the hub's that can succeed that way checks.
func (h *Hub) checkEvicted(cl *client, before uint64) {
	if cl.conn.Dropped() != before {
		h.noteEvicted(cl)
	}
}

// noteEvicted records that PolicyDropOldest evicted messages queued to cl: any of its
// subscriptions may have lost its latest publication. Called with a channel's mu held.
func (h *Hub) noteEvicted(cl *client) {
	if cl.evicted.Swap(true) {
		return
	}
	h.pmu.Lock()
	h.evicted = append(h.evicted, cl)
	h.pmu.Unlock()
}

// flushEvicted owes each subscription of the clients that lost messages a gap push up to the
// last publication queued to it: a client that has it ignores the push, one that lost it fetches
// it from history.
func (h *Hub) flushEvicted() {
	evicted := take(&h.pmu, &h.evicted)
	for _, cl := range evicted {
		cl.evicted.Store(false)
		for _, name := range cl.subNames() {
			ch := h.channel(name)
			if ch == nil {
				continue
			}
			ch.mu.Lock()
			if sub := ch.subs[cl]; sub != nil && !sub.recovering && sub.last > 0 {
				sub.gap = max(sub.gap, sub.last)
				h.noteGap(ch, cl, sub)
			}
			ch.mu.Unlock()
		}
	}
}

// flushPresence pushes the gathered changes of every channel that has some.
func (h *Hub) flushPresence() {
	dirty := take(&h.pmu, &h.dirty)
	var joined, left []*client
	for _, ch := range dirty {
		joined, left = joined[:0], left[:0]
		ch.mu.Lock()
		ch.dirty = false
		for cl, j := range ch.changes {
			if j {
				joined = append(joined, cl)
			} else {
				left = append(left, cl)
			}
		}
		clear(ch.changes)
		if ch.events > 0 && len(joined)+len(left) > 0 {
			msg, err := wsgate.NewPreparedMessage(wsgate.Text, protocol.PresenceChangePush(ch.name, infos(joined), infos(left)))
			for cl, sub := range ch.subs {
				if err == nil && sub.events && !sub.recovering {
					dropped := cl.conn.Dropped()
					if cl.conn.SendPrepared(msg) == nil {
						h.checkEvicted(cl, dropped)
					}
				}
			}
		}
		ch.mu.Unlock()
	}
}

// infos returns what presence shows of cls, ordered by connection.
func infos(cls []*client) []protocol.ClientInfo {
	slices.SortFunc(cls, func(a, b *client) int { return cmp.Compare(a.conn.ID(), b.conn.ID()) })
	out := make([]protocol.ClientInfo, len(cls))
	for i, cl := range cls {
		out[i] = cl.info
	}
	return out
}

// presence lists the channel's subscribers, ordered by connection.
func (ch *channel) presence() []protocol.ClientInfo {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	out := make([]protocol.ClientInfo, len(ch.order))
	for i, cl := range ch.order {
		out[i] = cl.info
	}
	return out
}

// presencePage returns the subscribers of channel after the connection named after, ordered by
// connection, at most limit of them and within the reply budget of cl. It costs O(log n + limit)
// under the channel's lock, whatever the channel's size.
func (h *Hub) presencePage(cl *client, name, after string, limit int) protocol.PresenceResult {
	ch := h.channel(name)
	res := protocol.PresenceResult{Clients: []protocol.ClientInfo{}}
	if ch == nil {
		return res
	}
	var from uint64
	if after != "" {
		from, _ = strconv.ParseUint(after, 10, 64) // not a number: from the start
	}
	_, free := cl.conn.SendQueueFree()
	budget := min(free-replyReserve, h.opts.MaxReplyBytes) - 64
	ch.mu.Lock()
	defer ch.mu.Unlock()
	res.Total = len(ch.order)
	i, found := slices.BinarySearchFunc(ch.order, from, byID)
	if found {
		i++
	}
	size := 0
	for ; i < len(ch.order); i++ {
		c := ch.order[i]
		size += 24 + len(c.info.Conn) + len(c.info.User)*6 // a user name may escape to \uXXXX
		if len(res.Clients) == limit || size > budget {
			res.Next = "0" // the queue is full: ask again later, from the start
			if n := len(res.Clients); n > 0 {
				res.Next = res.Clients[n-1].Conn
			} else if after != "" {
				res.Next = after
			}
			break
		}
		res.Clients = append(res.Clients, c.info)
	}
	return res
}
