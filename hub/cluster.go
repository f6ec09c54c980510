package hub

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/protocol"
)

// Presence across nodes. When the broker has the broker.Cluster capability, every node keeps a
// replica of every other node's presence (the subscribers of each channel), as Phoenix's
// presence tracker does, so that a presence page or a join/leave push never waits on another
// node:
//
//   - Each node numbers the presence changes it sends: one delta message per presence round
//     (PresenceInterval) with the final state of every connection that changed in it, so a delta
//     applied twice, or on top of a snapshot that already holds it, changes nothing.
//   - Each node sends a heartbeat with its last number every PresenceTTL/5. A receiver that sees
//     a number jump, or a node it does not know, asks that node for a snapshot; the node sends
//     one, in parts, on the same topic, so it arrives in order with the deltas around it.
//   - A node not heard from for PresenceTTL is gone: its connections leave every presence list,
//     and the subscribers that asked for join/leave pushes get the leaves. A node that stops
//     cleanly says so ("bye"), and its connections leave at once.
//
// A node's name is new at every start (broker.Cluster.Node), so a restarted node is a new node
// and the old one expires. A partition heals by itself: the far side expires, then its next
// heartbeat is from an unknown node, which is asked for a snapshot.
//
// Cost: every node holds the presence of the whole cluster, one member (a connection ID, its
// user name and its identity's info: at most MaxUserLen + MaxInfoLen bytes) per subscription, and receives every presence change once per round; nothing
// depends on a client's input but through the subscriptions the hub bounds per connection.

// clusterTopic carries all presence traffic: one topic, so one node's messages arrive in order.
const clusterTopic = "presence"

// maxClusterPart bounds one presence message (NATS allows 1 MiB by default).
const maxClusterPart = 256 << 10

// DefaultPresenceTTL is the default of Options.PresenceTTL.
const DefaultPresenceTTL = 5 * time.Second

// clusterMsg is one presence message between nodes.
type clusterMsg struct {
	Kind   string      `json:"k"`           // d delta, h heartbeat, r snapshot start, a snapshot part, q snapshot request, b bye
	Seq    uint64      `json:"s,omitempty"` // the sender's number of its last delta
	Part   int         `json:"p,omitempty"` // a snapshot part's number, from 1
	End    bool        `json:"e,omitempty"` // the last part of a snapshot
	Target string      `json:"t,omitempty"` // q: the node asked ("*": every node)
	Chans  []chanDelta `json:"c,omitempty"`
}

// chanDelta is what changed in one channel (a delta), or who is in it (a snapshot).
type chanDelta struct {
	Name  string   `json:"n"`
	Join  []member `json:"j,omitempty"`
	Leave []uint64 `json:"l,omitempty"`
}

// member is a connection of a node in a channel's presence: its ID, user and info (at most
// MaxUserLen and MaxInfoLen bytes, checked at connect).
type member struct {
	ID   uint64          `json:"i"`
	User string          `json:"u,omitempty"`
	Info json.RawMessage `json:"f,omitempty"`
}

// peer is what this node knows of another.
type peer struct {
	name   string
	seq    uint64
	seen   time.Time
	synced bool                // a snapshot was applied: deltas can follow
	asked  time.Time           // when a snapshot was last asked of it
	chans  map[string][]member // by channel, ordered by ID; a slice is replaced, never changed
	snap   map[string][]member // a snapshot being received
	snapAt uint64
	part   int // the last part of it received
}

// cluster is the hub's side of the broker's Cluster capability.
type cluster struct {
	bus     broker.Cluster
	node    string
	ttl     time.Duration
	cancel  func()
	wanted  atomic.Bool // a snapshot was asked of this node
	started time.Time   // when every node was asked for its snapshot

	seq uint64 // owned by the hub's loop

	mu    sync.Mutex // guards peers, names; taken after a channel's mu
	peers map[string]*peer
	names []string // peers' names, sorted
}

// startCluster joins the cluster's presence if b has the capability.
func (h *Hub) startCluster(b broker.Broker) error {
	bus, ok := b.(broker.Cluster)
	if !ok {
		return nil
	}
	c := &cluster{bus: bus, node: bus.Node(), ttl: h.opts.PresenceTTL, peers: map[string]*peer{}, started: time.Now()}
	cancel, err := bus.Listen(clusterTopic, h.receive)
	if err != nil {
		return err
	}
	c.cancel = cancel
	h.cl = c
	h.sendCluster(clusterMsg{Kind: "q", Target: "*"}) // every node: send me your presence
	return nil
}

// member name of a connection of node: "node:id" in a cluster, "id" alone on one node.
func (h *Hub) connName(node string, id uint64) string {
	if h.cl == nil {
		return strconv.FormatUint(id, 10)
	}
	return node + ":" + strconv.FormatUint(id, 10)
}

// parseConn splits a connection name into its node and ID; ok false if it is not one.
func (h *Hub) parseConn(s string) (node string, id uint64, ok bool) {
	if h.cl != nil {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return "", 0, false
		}
		node, s = s[:i], s[i+1:]
	}
	id, err := strconv.ParseUint(s, 10, 64)
	return node, id, err == nil
}

// sendCluster sends m to the other nodes; false if it could not be handed to the transport (a
// lost delta shows in the next heartbeat's number; a lost snapshot part is sent again).
func (h *Hub) sendCluster(m clusterMsg) bool {
	b, err := json.Marshal(m)
	if err == nil {
		err = h.cl.bus.Send(clusterTopic, b)
	}
	if err != nil {
		h.opts.Logger.Warn("hub: presence message not sent", "kind", m.Kind, "bytes", len(b), "err", err)
		return false
	}
	return true
}

// sendDeltas numbers and sends this round's local presence changes, in messages of at most
// maxClusterPart bytes. Called by the loop.
func (h *Hub) sendDeltas(deltas []chanDelta) {
	for _, part := range pack(deltas) {
		h.cl.seq++
		h.sendCluster(clusterMsg{Kind: "d", Seq: h.cl.seq, Chans: part})
	}
}

// pack splits ds into messages of at most maxClusterPart bytes as encoded (an estimate from
// above), splitting a channel's lists across messages where they do not fit in one: a receiver
// applies the pieces of a channel one after the other, which comes to the same.
func pack(ds []chanDelta) [][]chanDelta {
	var out [][]chanDelta
	var cur []chanDelta
	size := 0
	add := func(d chanDelta, n int) {
		if size+n > maxClusterPart && len(cur) > 0 {
			out, cur, size = append(out, cur), nil, 0
		}
		cur, size = append(cur, d), size+n
	}
	for _, d := range ds {
		piece, n := chanDelta{Name: d.Name}, len(d.Name)+16
		next := func(mn int) {
			if n+mn > maxClusterPart && len(piece.Join)+len(piece.Leave) > 0 {
				add(piece, n)
				piece, n = chanDelta{Name: d.Name}, len(d.Name)+16
			}
			n += mn
		}
		for _, m := range d.Join {
			next(len(m.User)*6 + len(m.Info)*6 + 40) // a user name, and info, may escape to \uXXXX
			piece.Join = append(piece.Join, m)
		}
		for _, id := range d.Leave {
			next(21)
			piece.Leave = append(piece.Leave, id)
		}
		add(piece, n)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// sendSnapshot sends everything this node's channels hold, in numbered parts, numbered with the
// last delta sent: what a receiver applies on top of it are the deltas after. A connection that
// joined or left since that delta may be in it or not: the next delta holds its final state
// either way, and applying it again changes nothing. Called by the loop.
func (h *Hub) sendSnapshot() {
	h.mu.RLock()
	chans := slices.Collect(maps.Values(h.channels))
	h.mu.RUnlock()
	var all []chanDelta
	for _, ch := range chans {
		ch.mu.Lock()
		d := chanDelta{Name: ch.name, Join: make([]member, 0, len(ch.order))}
		for _, cl := range ch.order {
			d.Join = append(d.Join, member{cl.conn.ID(), cl.info.User, cl.info.Info})
		}
		ch.mu.Unlock()
		if len(d.Join) > 0 {
			all = append(all, d)
		}
	}
	parts := pack(all)
	if len(parts) == 0 {
		parts = [][]chanDelta{nil}
	}
	for i, part := range parts {
		kind := "a"
		if i == 0 {
			kind = "r"
		}
		if !h.sendCluster(clusterMsg{Kind: kind, Seq: h.cl.seq, Part: i + 1, End: i == len(parts)-1, Chans: part}) {
			h.cl.wanted.Store(true) // a part lost here: the whole again, next round
			return
		}
	}
}

// heartbeat says this node is alive, up to which delta, and forgets the nodes not heard from
// for PresenceTTL. Called by the loop.
func (h *Hub) heartbeat(now time.Time) {
	h.sendCluster(clusterMsg{Kind: "h", Seq: h.cl.seq})
	c := h.cl
	var gone []*peer
	c.mu.Lock()
	for _, name := range c.names {
		if p := c.peers[name]; now.Sub(p.seen) > c.ttl {
			gone = append(gone, p)
		}
	}
	for _, p := range gone {
		c.drop(p)
	}
	c.mu.Unlock()
	for _, p := range gone {
		h.opts.Logger.Info("hub: node gone from presence", "node", p.name, "silent", now.Sub(p.seen).Round(time.Millisecond))
		h.notePeer(p.name, p.chans, nil)
	}
}

// drop forgets p. Called with c.mu held.
func (c *cluster) drop(p *peer) {
	delete(c.peers, p.name)
	if i, ok := slices.BinarySearch(c.names, p.name); ok {
		c.names = slices.Delete(c.names, i, i+1)
	}
}

// receive handles a presence message from another node (the broker's Listen callback: one at a
// time, never blocking on anything but locks).
func (h *Hub) receive(from string, raw []byte) {
	var m clusterMsg
	if err := json.Unmarshal(raw, &m); err != nil {
		h.opts.Logger.Warn("hub: bad presence message", "node", from, "err", err)
		return
	}
	c := h.cl
	if m.Kind == "q" && (m.Target == c.node || m.Target == "*") {
		c.wanted.Store(true)
	}
	c.mu.Lock()
	p := c.peers[from]
	if m.Kind == "b" {
		if p != nil {
			c.drop(p)
		}
		c.mu.Unlock()
		if p != nil {
			h.notePeer(from, p.chans, nil)
		}
		return
	}
	if p == nil {
		// Asked already, by the request to every node at start, if it came that recently: its
		// snapshot may be on the way behind this message.
		p = &peer{name: from, chans: map[string][]member{}, asked: c.started}
		c.peers[from] = p
		i, _ := slices.BinarySearch(c.names, from)
		c.names = slices.Insert(c.names, i, from)
	}
	p.seen = time.Now()
	var before, after map[string][]member // the channels that changed: their members before and after
	switch m.Kind {
	case "d":
		if p.synced && m.Seq == p.seq+1 {
			before, after = p.apply(m.Chans)
			p.seq = m.Seq
		} else if !p.synced || m.Seq > p.seq {
			c.ask(p)
		}
	case "q":
		// A request to every node is the first thing a node sends, before it has any
		// subscriber: an empty snapshot at its number 0. A request to one node says nothing
		// of the sender's presence.
		if m.Target == "*" && !p.synced {
			p.seq, p.synced = 0, true
		}
	case "h":
		if !p.synced || m.Seq != p.seq {
			c.ask(p)
		}
	case "r":
		if !p.synced || m.Seq > p.seq {
			p.snap, p.snapAt, p.part = map[string][]member{}, m.Seq, 0
		}
		fallthrough
	case "a":
		if p.snap == nil || p.snapAt != m.Seq {
			break
		}
		if m.Part != p.part+1 { // a part lost on the way: this snapshot is no good
			p.snap = nil
			c.ask(p)
			break
		}
		p.part = m.Part
		for _, d := range m.Chans {
			p.snap[d.Name] = append(p.snap[d.Name], d.Join...)
		}
		if m.End {
			for name, ms := range p.snap {
				slices.SortFunc(ms, func(a, b member) int { return cmpID(a.ID, b.ID) })
				p.snap[name] = slices.CompactFunc(ms, func(a, b member) bool { return a.ID == b.ID })
			}
			before, after = p.chans, p.snap
			p.chans, p.seq, p.synced, p.snap = p.snap, p.snapAt, true, nil
		}
	}
	c.mu.Unlock()
	if before != nil || after != nil {
		h.notePeer(from, before, after)
	}
}

// ask requests a snapshot of p, at most once a second. Called with c.mu held.
func (c *cluster) ask(p *peer) {
	if now := time.Now(); now.Sub(p.asked) >= time.Second {
		p.asked = now
		b, _ := json.Marshal(clusterMsg{Kind: "q", Target: p.name})
		_ = c.bus.Send(clusterTopic, b) // a lost request is asked again on the next heartbeat
	}
}

// apply applies one delta; it returns the members before and after of the channels it changed.
// Called with the cluster's mu held.
func (p *peer) apply(ds []chanDelta) (before, after map[string][]member) {
	before, after = map[string][]member{}, map[string][]member{}
	for _, d := range ds {
		old := p.chans[d.Name]
		ms := slices.Clone(old)
		for _, id := range d.Leave {
			if i, ok := slices.BinarySearchFunc(ms, id, byMember); ok {
				ms = slices.Delete(ms, i, i+1)
			}
		}
		for _, m := range d.Join {
			i, ok := slices.BinarySearchFunc(ms, m.ID, byMember)
			if ok {
				ms[i] = m
			} else {
				ms = slices.Insert(ms, i, m)
			}
		}
		if _, seen := before[d.Name]; !seen {
			before[d.Name] = old
		}
		after[d.Name] = ms
		if len(ms) == 0 {
			delete(p.chans, d.Name)
		} else {
			p.chans[d.Name] = ms
		}
	}
	return before, after
}

func byMember(m member, id uint64) int { return cmpID(m.ID, id) }

func cmpID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// notePeer records, for the join/leave pushes of this node's subscribers, how node's members
// changed from before to after in every channel named in either.
func (h *Hub) notePeer(node string, before, after map[string][]member) {
	for name := range before {
		h.notePeerChannel(node, name, before[name], after[name])
	}
	for name, ms := range after {
		if _, done := before[name]; !done {
			h.notePeerChannel(node, name, nil, ms)
		}
	}
}

func (h *Hub) notePeerChannel(node, name string, before, after []member) {
	ch := h.channel(name)
	if ch == nil {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.events == 0 {
		return
	}
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		switch {
		case j == len(after) || i < len(before) && before[i].ID < after[j].ID:
			h.noteChange(ch, change{node: node, id: before[i].ID, info: h.info(node, before[i])}, false)
			i++
		case i == len(before) || after[j].ID < before[i].ID:
			h.noteChange(ch, change{node: node, id: after[j].ID, info: h.info(node, after[j])}, true)
			j++
		default:
			if before[i].User != after[j].User || !bytes.Equal(before[i].Info, after[j].Info) {
				h.noteChange(ch, change{node: node, id: after[j].ID, info: h.info(node, after[j])}, true)
			}
			i++
			j++
		}
	}
}

func (h *Hub) info(node string, m member) protocol.ClientInfo {
	return protocol.ClientInfo{Conn: h.connName(node, m.ID), User: m.User, Info: m.Info}
}

// block is one node's part of a channel's presence, ordered by connection ID.
type block struct {
	node  string
	local []*client // this node's, or
	peer  []member  // another's
}

func (b block) len() int {
	if b.local != nil {
		return len(b.local)
	}
	return len(b.peer)
}

func (b block) id(i int) uint64 {
	if b.local != nil {
		return b.local[i].conn.ID()
	}
	return b.peer[i].ID
}

// blocks returns the parts of channel's presence, ordered by node: this node's local subscribers
// (order, held under the channel's lock by the caller, which must keep it while using them) and
// the replicas of the other nodes'.
func (h *Hub) blocks(name string, order []*client) []block {
	self := ""
	if h.cl != nil {
		self = h.cl.node
	}
	out := []block{{node: self, local: order}}
	if order == nil {
		out[0].local = []*client{}
	}
	if h.cl == nil {
		return out
	}
	c := h.cl
	c.mu.Lock()
	for _, node := range c.names {
		if ms := c.peers[node].chans[name]; len(ms) > 0 {
			out = append(out, block{node: node, peer: ms})
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b block) int { return strings.Compare(a.node, b.node) })
	return out
}
