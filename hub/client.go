package hub

import (
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// client is the hub's state for one wsgate.v1 connection. The hub keeps it in its own registry
// (clientSet), not in the connection's Data, which stays the application's.
type client struct {
	hub  *Hub
	conn *wsgate.Conn
	info protocol.ClientInfo

	// The request rate (nil: unlimited); only the connection's reader goroutine uses it.
	lim *rate.Limiter

	// Its place in the hub's deadlines (connect timeout, identity expiry, refresh grace); guarded
	// by Hub.dl.mu, but for dlSeq, which changes under both mu and Hub.dl.mu.
	dlAt   time.Time
	dlIdx  int // in Hub.dl.heap; -1: none
	dlKind deadlineKind
	dlSeq  uint32

	evicted atomic.Bool // in Hub.evicted: PolicyDropOldest evicted messages queued to it

	mu     sync.Mutex
	subs   map[string]struct{}
	closed bool // OnClose ran: no new subscriptions (a server-side Subscribe may race with it)
	// connected: the connection may make requests (it connected, or the hub has no Connect hook);
	// answered: a connect request succeeded (a second one gets 111). id is its Identity (nil:
	// anonymous), replaced whole by a refresh, never changed in place.
	connected, answered bool
	id                  *Identity
}

// identity returns c's Identity and whether c is connected.
func (c *client) identity() (*Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id, c.connected
}

// addSub reserves a subscription slot; false if already subscribed, at the limit, or closed.
func (c *client) addSub(name string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.subs[name]; dup || len(c.subs) >= limit || c.closed {
		return false
	}
	c.subs[name] = struct{}{}
	return true
}

func (c *client) hasSub(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.subs[name]
	return ok
}

// live reports whether the subscription to name is still wanted: not unsubscribed, not closed.
func (c *client) live(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.subs[name]
	return ok && !c.closed
}

func (c *client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *client) dropSub(name string) {
	c.mu.Lock()
	delete(c.subs, name)
	c.mu.Unlock()
}

// markClosed refuses new subscriptions and returns the current ones.
func (c *client) markClosed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.namesLocked()
}

// subNames returns the channels c is subscribed to.
func (c *client) subNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.namesLocked()
}

func (c *client) namesLocked() []string {
	out := make([]string, 0, len(c.subs))
	for n := range c.subs {
		out = append(out, n)
	}
	return out
}

// allow takes a token from the request bucket; false when the connection is over its rate.
func (c *client) allow() bool { return c.lim == nil || c.lim.Allow() }

// reply queues a reply. A reply is never dropped silently: PolicyDropOldest does not evict it
// (it is pinned), and one the queue refuses closes the connection (1013, reconnect), unless the
// connection's slow-consumer policy closed it already.
func (c *client) reply(b []byte) {
	dropped := c.conn.Dropped()
	if err := c.conn.SendPinned(wsgate.Text, b); err != nil {
		_ = c.conn.Close(wsgate.CloseTryAgainLater, "reply could not be queued")
		return
	}
	c.hub.checkEvicted(c, dropped)
}

// clientSet is the hub's registry of its wsgate.v1 connections, sharded so that the lookup on every
// message does not contend on one lock.
type clientSet struct{ shards [16]clientShard }

type clientShard struct {
	mu sync.RWMutex
	m  map[*wsgate.Conn]*client
}

func (s *clientSet) init() {
	for i := range s.shards {
		s.shards[i].m = map[*wsgate.Conn]*client{}
	}
}

func (s *clientSet) shard(c *wsgate.Conn) *clientShard {
	return &s.shards[c.ID()%uint64(len(s.shards))]
}

func (s *clientSet) add(cl *client) {
	sh := s.shard(cl.conn)
	sh.mu.Lock()
	sh.m[cl.conn] = cl
	sh.mu.Unlock()
}

func (s *clientSet) remove(c *wsgate.Conn) {
	sh := s.shard(c)
	sh.mu.Lock()
	delete(sh.m, c)
	sh.mu.Unlock()
}

func (s *clientSet) get(c *wsgate.Conn) *client {
	sh := s.shard(c)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[c]
}

func (s *clientSet) snapshot(buf []*client) []*client {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, cl := range sh.m {
			buf = append(buf, cl)
		}
		sh.mu.RUnlock()
	}
	return buf
}

// handler serves wsgate.v1 connections and passes the others to the application.
type handler struct {
	h   *Hub
	app wsgate.Handler
}

func (hd *handler) OnOpen(c *wsgate.Conn) {
	if c.Subprotocol() != protocol.Subprotocol {
		if hd.app != nil {
			hd.app.OnOpen(c)
		}
		return
	}
	h := hd.h
	cl := &client{hub: h, conn: c, info: protocol.ClientInfo{Conn: h.connID(c)}, subs: map[string]struct{}{}, dlIdx: -1}
	if h.opts.RequestRate > 0 {
		cl.lim = rate.NewLimiter(rate.Limit(h.opts.RequestRate), h.opts.RequestBurst)
	}
	if h.opts.UserID != nil {
		cl.info.User = cutUser(h.opts.UserID(c))
	}
	if h.opts.Connect != nil {
		cl.mu.Lock()
		h.dl.schedule(cl, time.Now().Add(h.opts.ConnectTimeout), deadlineConnect)
		cl.mu.Unlock()
	} else {
		cl.connected = true
	}
	h.clients.add(cl)
	if h.opts.Connect == nil && h.opts.OnConnect != nil {
		h.opts.OnConnect(c, nil)
	}
}

func (hd *handler) OnClose(c *wsgate.Conn, err error) {
	h := hd.h
	cl := h.clients.get(c)
	if cl == nil {
		if hd.app != nil {
			hd.app.OnClose(c, err)
		}
		return
	}
	for _, name := range cl.markClosed() {
		h.unsubscribe(cl, name)
	}
	h.clients.remove(c)
	h.dropDeadline(cl)
	if id, connected := cl.identity(); connected && h.opts.OnDisconnect != nil {
		h.opts.OnDisconnect(c, id)
	}
}

func (hd *handler) OnMessage(c *wsgate.Conn, m wsgate.Message) {
	cl := hd.h.clients.get(c)
	if cl == nil {
		if hd.app != nil {
			hd.app.OnMessage(c, m)
		}
		return
	}
	if m.Type != wsgate.Text {
		cl.reply(protocol.ErrorReply(0, protocol.Errorf(protocol.CodeNotText, "wsgate.v1 frames are JSON text")))
		return
	}
	// Parsing costs in proportion to the bytes read, which the read limit and TCP bound; the rate
	// bounds what a request may make the hub and broker do, and the replies they produce.
	req, perr := protocol.Parse(m.Data)
	if !cl.allow() { // every frame counts, a malformed one too: each gets a reply
		perr = protocol.Errorf(protocol.CodeRateLimited, "more than %g requests a second", hd.h.opts.RequestRate)
	}
	if perr != nil {
		cl.reply(protocol.ErrorReply(req.ID, perr))
		return
	}
	if reply := hd.h.serve(cl, req); reply != nil {
		cl.reply(reply)
	}
}

// MaxUserLen bounds a user name in presence, in bytes: what every node of a cluster keeps per
// subscription and sends in a presence message.
const MaxUserLen = 1024

// cutUser cuts a user name to MaxUserLen bytes, on a character boundary.
func cutUser(u string) string {
	if len(u) <= MaxUserLen {
		return u
	}
	i := MaxUserLen
	for i > 0 && !utf8.RuneStart(u[i]) {
		i--
	}
	return u[:i]
}

// dropDeadline removes cl's deadline at its close. dlSeq changes under both cl.mu and Hub.dl.mu,
// and actOn reads it under cl.mu only: the close takes both, like every other change.
func (h *Hub) dropDeadline(cl *client) {
	cl.mu.Lock()
	h.dl.cancel(cl)
	cl.mu.Unlock()
}
