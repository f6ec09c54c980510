package gateway

import (
	"container/list"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate"
)

// handshakes is a token bucket per client address for upgrade requests. Its memory is bounded:
// at most max addresses are kept (an entry is about 150 bytes), the least recently seen giving
// way to a new one. An evicted address starts again with a full bucket: a client that owns many
// addresses can make others' buckets forgotten, which only lets them in sooner, never later.
type handshakes struct {
	rate  rate.Limit
	burst int
	max   int

	mu  sync.Mutex
	m   map[netip.Prefix]*list.Element // of *bucket
	lru list.List                      // front: most recently seen
}

type bucket struct {
	key netip.Prefix
	lim *rate.Limiter
}

func newHandshakes(l *Limits) *handshakes {
	if l.HandshakesPerSecond <= 0 {
		return nil
	}
	burst := l.HandshakeBurst
	if burst == 0 {
		burst = max(1, int(math.Ceil(l.HandshakesPerSecond)))
	}
	h := &handshakes{rate: rate.Limit(l.HandshakesPerSecond), burst: burst,
		max: l.HandshakeAddresses, m: map[netip.Prefix]*list.Element{}}
	if h.max == 0 {
		h.max = DefaultHandshakeAddresses
	}
	return h
}

// allow takes a token for a's bucket; when there is none it returns how long until there is.
// A request without an address (a Unix socket) is not limited.
func (h *handshakes) allow(a netip.Addr, now time.Time) (ok bool, retry time.Duration) {
	if h == nil || !a.IsValid() {
		return true, 0
	}
	key := wsgate.ClientPrefix(a)
	h.mu.Lock()
	defer h.mu.Unlock()
	var b *bucket
	if e, found := h.m[key]; found {
		h.lru.MoveToFront(e)
		b = e.Value.(*bucket)
	} else {
		if h.lru.Len() >= h.max {
			old := h.lru.Back()
			h.lru.Remove(old)
			delete(h.m, old.Value.(*bucket).key)
		}
		b = &bucket{key: key, lim: rate.NewLimiter(h.rate, h.burst)}
		h.m[key] = h.lru.PushFront(b)
	}
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// size is the number of addresses kept (tests).
func (h *handshakes) size() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// registry is this node's live connections by user: the connections-per-user cap, and the
// user operations of the backend API (subscribe, unsubscribe, disconnect a user). Its size is
// the node's connections: one entry per identified connection.
type registry struct {
	mu    sync.Mutex
	users map[string]map[*wsgate.Conn]struct{}
}

func newRegistry() *registry {
	return &registry{users: map[string]map[*wsgate.Conn]struct{}{}}
}

// add registers c as user's, unless user has limit connections already (limit 0: no cap).
func (r *registry) add(user string, c *wsgate.Conn, limit int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	conns := r.users[user]
	if limit > 0 && len(conns) >= limit {
		return false
	}
	if conns == nil {
		conns = map[*wsgate.Conn]struct{}{}
		r.users[user] = conns
	}
	conns[c] = struct{}{}
	return true
}

func (r *registry) remove(user string, c *wsgate.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	conns := r.users[user]
	delete(conns, c)
	if len(conns) == 0 {
		delete(r.users, user)
	}
}

// count is how many connections user has on this node.
func (r *registry) count(user string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.users[user])
}

// conns returns a copy of user's connections, to act on without the lock.
func (r *registry) conns(user string) []*wsgate.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*wsgate.Conn, 0, len(r.users[user]))
	for c := range r.users[user] {
		out = append(out, c)
	}
	return out
}
