package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/protocol"
)

// The server-side methods the gateway and its API build on.

// connected returns the hub's client of c if c is a connected wsgate.v1 connection of this hub.
func (h *Hub) connected(c *wsgate.Conn) (*client, error) {
	cl := h.clients.get(c)
	if cl == nil {
		return nil, fmt.Errorf("%w: connection %d", ErrNotConnected, c.ID())
	}
	if _, ok := cl.identity(); !ok {
		return nil, fmt.Errorf("%w: connection %d has not connected yet", ErrNotConnected, c.ID())
	}
	return cl, nil
}

// Identity returns c's Identity as the Connect hook gave it (its ExpiresAt as the last refresh
// set it), or nil: anonymous, not connected yet, or not a wsgate.v1 connection of this hub. The
// hub replaces a connection's Identity whole and never changes it: the caller must not either.
func (h *Hub) Identity(c *wsgate.Conn) *Identity {
	cl := h.clients.get(c)
	if cl == nil {
		return nil
	}
	id, _ := cl.identity()
	return id
}

// Subscribe subscribes a connected wsgate.v1 connection to channel from the server side, without
// Authorize: the client is told with a {"push":"subscribe","channel":..,"epoch":..,"offset":..},
// which comes before any publication of the channel, and receives publications as if it had
// subscribed itself. Errors: one wrapping ErrNotConnected, or a *protocol.Error (bad channel,
// already subscribed, limit, broker).
func (h *Hub) Subscribe(ctx context.Context, c *wsgate.Conn, channel string) error {
	cl, err := h.connected(c)
	if err != nil {
		return err
	}
	if perr := protocol.ValidChannel(channel); perr != nil {
		return perr
	}
	if _, perr := h.subscribe(ctx, cl, channel, subReq{push: true}); perr != nil {
		return perr
	}
	return nil
}

// Unsubscribe unsubscribes a connected wsgate.v1 connection from channel from the server side;
// the client is told with a {"push":"unsubscribe","channel":..}, after which no publication of
// the channel reaches it. Errors: one wrapping ErrNotConnected, or a *protocol.Error (105 when
// it was not subscribed).
func (h *Hub) Unsubscribe(c *wsgate.Conn, channel string) error {
	cl, err := h.connected(c)
	if err != nil {
		return err
	}
	if !h.unsubscribe(cl, channel) {
		return protocol.Errorf(protocol.CodeNotSubscribed, "not subscribed to %q", channel)
	}
	cl.reply(unsubscribePush(channel))
	return nil
}

// Subscribed reports whether c is subscribed to channel now: its subscribe (its own, a server-side
// Subscribe, or its identity's at connect) succeeded, and it has not been unsubscribed (by
// itself or Unsubscribe) nor closed since. A subscribe still being made is not counted. What a
// subscription let in (a private channel's presence, history and publish) is asked here, so that
// it ends with the subscription.
func (h *Hub) Subscribed(c *wsgate.Conn, channel string) bool {
	cl := h.clients.get(c)
	if cl == nil || !cl.live(channel) {
		return false
	}
	ch := h.channel(channel)
	if ch == nil {
		return false
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	sub, ok := ch.subs[cl]
	return ok && sub.done
}

// ChannelInfo is a channel with subscribers, in Hub.Channels.
type ChannelInfo struct {
	Name        string `json:"channel"`
	Subscribers int    `json:"subscribers"` // on every node of a cluster
}

// Channels lists the channels that have subscribers, on every node of a cluster, by name, from
// this node's state and its replicas of the other nodes' presence: it asks no other node, and a
// node's subscribers show here within a presence round (PresenceInterval) of their subscribe.
//
// Cost: one pass over this node's channels and over the replicas' channel lists, each channel
// under its own lock only briefly; time and result in proportion to the channels with
// subscribers in the cluster, which the subscriptions bound (MaxSubscriptions per connection).
// For an API to call now and then, not per message.
func (h *Hub) Channels() []ChannelInfo {
	h.mu.RLock()
	chans := make([]*channel, 0, len(h.channels))
	for _, ch := range h.channels {
		chans = append(chans, ch)
	}
	h.mu.RUnlock()
	counts := make(map[string]int, len(chans))
	for _, ch := range chans {
		ch.mu.Lock()
		if n := len(ch.order); n > 0 {
			counts[ch.name] += n
		}
		ch.mu.Unlock()
	}
	if c := h.cl; c != nil {
		c.mu.Lock()
		for _, p := range c.peers {
			for name, ms := range p.chans {
				counts[name] += len(ms)
			}
		}
		c.mu.Unlock()
	}
	out := make([]ChannelInfo, 0, len(counts))
	for name, n := range counts {
		out = append(out, ChannelInfo{Name: name, Subscribers: n})
	}
	slices.SortFunc(out, func(a, b ChannelInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PresenceStats counts channel's subscribers on every node (clients) and their distinct
// non-empty user names (users: anonymous connections count as clients only). Cost: one pass over
// the channel's presence, under its lock, with a set of its user names.
func (h *Hub) PresenceStats(channel string) (clients, users int) {
	var order []*client
	if ch := h.channel(channel); ch != nil {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		order = ch.order
	}
	seen := map[string]struct{}{}
	for _, b := range h.blocks(channel, order) {
		clients += b.len()
		for i := range b.len() {
			u := ""
			if b.local != nil {
				u = b.local[i].info.User
			} else {
				u = b.peer[i].User
			}
			if u != "" {
				seen[u] = struct{}{}
			}
		}
	}
	return clients, len(seen)
}

// RemoveHistory forgets channel's history (broker.HistoryRemover): the next publication starts a
// new epoch, so a client recovering from before is told it cannot. Without the capability, an
// error wrapping errors.ErrUnsupported.
func (h *Hub) RemoveHistory(ctx context.Context, channel string) error {
	if perr := protocol.ValidChannel(channel); perr != nil {
		return perr
	}
	r, ok := h.broker.(broker.HistoryRemover)
	if !ok {
		return fmt.Errorf("hub: the broker cannot remove history: %w", errors.ErrUnsupported)
	}
	if err := r.RemoveHistory(ctx, channel); err != nil {
		return fmt.Errorf("hub: removing the history of %q: %w", channel, err)
	}
	return nil
}

// Cluster returns the broker's cluster bus, for the gateway's own messages between nodes (a
// topic of its own: the hub's presence uses "presence"), or nil on one node.
func (h *Hub) Cluster() broker.Cluster {
	if h.cl == nil {
		return nil
	}
	return h.cl.bus
}
