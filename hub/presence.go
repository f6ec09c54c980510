package hub

import (
	"cmp"
	"errors"
	"slices"
	"sort"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// Presence changes are gathered per channel and pushed once per PresenceInterval, as one
// {"push":"presence"} with the connections that joined and left: churn on a channel with n
// subscribers that want them costs at most n pushes per interval, not n per join or leave. The
// changes kept are bounded by the connections that were subscribers during the interval (one
// entry per connection at most, its state at the start and at the end: one that joined and left
// within the interval is pushed to nobody).

// change is a connection that joined or left a channel's presence, on this node or another,
// during a presence round.
type change struct {
	node   string // the connection's node ("" on one node)
	id     uint64
	info   protocol.ClientInfo
	local  bool // a connection of this node: the other nodes are told
	joined bool // in presence now
	was    bool // in presence at the start of the round
}

// notePresence records that cl joined or left ch. Called with ch.mu held.
func (h *Hub) notePresence(ch *channel, cl *client, joined bool) {
	node := ""
	if h.cl != nil {
		node = h.cl.node
	}
	h.noteChange(ch, change{node: node, id: cl.conn.ID(), info: cl.info, local: true}, joined)
}

// noteChange records a presence change of ch for the next round. Called with ch.mu held.
func (h *Hub) noteChange(ch *channel, c change, joined bool) {
	if ch.changes == nil {
		ch.changes = map[string]change{}
	}
	c.joined, c.was = joined, !joined
	if prev, ok := ch.changes[c.info.Conn]; ok {
		c.was = prev.was
	}
	// Kept even when it comes back to where it was (joined and left within one round): the
	// clients are told nothing of it, but the other nodes are told its final state, since a
	// snapshot taken within the round may hold either.
	ch.changes[c.info.Conn] = c
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

// flushPresence pushes the gathered changes of every channel that has some, and sends this
// node's own to the other nodes of a cluster.
func (h *Hub) flushPresence() {
	dirty := take(&h.pmu, &h.dirty)
	var joined, left []change
	var deltas []chanDelta
	for _, ch := range dirty {
		joined, left = joined[:0], left[:0]
		d := chanDelta{Name: ch.name}
		ch.mu.Lock()
		ch.dirty = false
		for _, c := range ch.changes {
			switch {
			case c.joined == c.was: // back where it was: nothing to push
			case c.joined:
				joined = append(joined, c)
			default:
				left = append(left, c)
			}
			switch {
			case !c.local || h.cl == nil:
			case c.joined:
				d.Join = append(d.Join, member{c.id, c.info.User, c.info.Info})
			default:
				d.Leave = append(d.Leave, c.id)
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
		if len(d.Join)+len(d.Leave) > 0 {
			deltas = append(deltas, d)
		}
	}
	if h.cl != nil && len(deltas) > 0 {
		h.sendDeltas(deltas)
	}
}

// infos returns what presence shows of cs, ordered by node and connection.
func infos(cs []change) []protocol.ClientInfo {
	slices.SortFunc(cs, func(a, b change) int {
		return cmp.Or(cmp.Compare(a.node, b.node), cmp.Compare(a.id, b.id))
	})
	out := make([]protocol.ClientInfo, len(cs))
	for i, c := range cs {
		out[i] = c.info
	}
	return out
}

// presence lists the channel's subscribers on every node, ordered by node and connection.
func (h *Hub) presence(name string) []protocol.ClientInfo {
	var order []*client
	if ch := h.channel(name); ch != nil {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		order = ch.order
	}
	out := []protocol.ClientInfo{}
	for _, b := range h.blocks(name, order) {
		for i := range b.len() {
			out = append(out, b.infoAt(h, i))
		}
	}
	return out
}

func (b block) infoAt(h *Hub, i int) protocol.ClientInfo {
	if b.local != nil {
		return b.local[i].info
	}
	return h.info(b.node, b.peer[i])
}

// presencePage returns the subscribers of channel after the connection named after, ordered by
// connection, at most limit of them and within the reply budget of cl. It costs O(log n + limit)
// under the channel's lock, whatever the channel's size.
func (h *Hub) presencePage(cl *client, name, after string, limit int) protocol.PresenceResult {
	res := protocol.PresenceResult{Clients: []protocol.ClientInfo{}}
	var order []*client
	if ch := h.channel(name); ch != nil {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		order = ch.order
	}
	blocks := h.blocks(name, order)
	for _, b := range blocks {
		res.Total += b.len()
	}
	// Start after the connection named after: in its node's block, or at the next node's when
	// it or its node is gone. Not a connection name: from the start.
	anode, aid, ok := h.parseConn(after)
	if !ok {
		anode, after = "", ""
	}
	_, free := cl.conn.SendQueueFree()
	budget := min(free-replyReserve, h.opts.MaxReplyBytes) - 64
	size := 0
	for _, b := range blocks {
		i := 0
		if after != "" {
			if b.node < anode {
				continue
			}
			if b.node == anode {
				var found bool
				i, found = searchBlock(b, aid)
				if found {
					i++
				}
			}
		}
		for ; i < b.len(); i++ {
			info := b.infoAt(h, i)
			size += 32 + len(info.Conn) + len(info.User)*6 + len(info.Info)*6 // user and info may escape to \uXXXX
			if len(res.Clients) == limit || size > budget {
				res.Next = "0" // the queue is full: ask again later, from the start
				if n := len(res.Clients); n > 0 {
					res.Next = res.Clients[n-1].Conn
				} else if after != "" {
					res.Next = after
				}
				return res
			}
			res.Clients = append(res.Clients, info)
		}
	}
	return res
}

// searchBlock finds id in b, as slices.BinarySearch does.
func searchBlock(b block, id uint64) (int, bool) {
	return sort.Find(b.len(), func(i int) int { return cmp.Compare(id, b.id(i)) })
}
