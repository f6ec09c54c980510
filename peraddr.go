package wsgate

import (
	"net/http"
	"net/netip"
	"sync"
)

// Connections per client address (Config.MaxConnectionsPerIP). An IPv4 client is its address;
// an IPv6 one its /64, the block one subscriber is usually given, so that one client cannot
// multiply its share by the addresses of its own network. Cost: one map entry per address with
// a live connection, and a pointer per connection; nothing at all when the cap is off.

// retryAfter is the Retry-After of a 429: a place frees when one of the address's connections
// ends, which nothing predicts; it asks a client to back off rather than retry at once.
const retryAfter = "10"

// addrSlot counts the live connections of one client address.
type addrSlot struct {
	key netip.Prefix
	n   int
}

// addrCounts holds a slot per client address with live connections; the zero value is ready.
type addrCounts struct {
	mu sync.Mutex
	m  map[netip.Prefix]*addrSlot
}

// ClientPrefix is what a client is counted by, in MaxConnectionsPerIP and in any per-address
// limit an application keeps beside it (a gateway's handshake rate, a login form's): an IPv4
// address (an IPv4-mapped IPv6 one counts as that IPv4), or an IPv6 /64, the block one subscriber
// is usually given. The zero Prefix for the zero Addr.
func ClientPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 64
	if a.Is4() {
		bits = 32
	}
	p, _ := a.Prefix(bits)
	return p
}

// reserve takes a place for r's client, unless it holds max already. It returns the slot to
// release when the connection ends: nil when the cap is off or the peer has no IP address.
func (s *Server) reserveAddr(r *http.Request) (*addrSlot, bool) {
	max := s.cfg.MaxConnectionsPerIP
	if max <= 0 {
		return nil, true
	}
	a := s.cfg.clientAddr(r)
	if !a.IsValid() {
		return nil, true
	}
	key := ClientPrefix(a)
	ac := &s.addrs
	ac.mu.Lock()
	defer ac.mu.Unlock()
	slot := ac.m[key]
	if slot == nil {
		if ac.m == nil {
			ac.m = make(map[netip.Prefix]*addrSlot)
		}
		slot = &addrSlot{key: key}
		ac.m[key] = slot
	}
	if slot.n >= max {
		return nil, false
	}
	slot.n++
	return slot, true
}

// release gives back a place taken by reserveAddr; slot may be nil.
func (ac *addrCounts) release(slot *addrSlot) {
	if slot == nil {
		return
	}
	ac.mu.Lock()
	if slot.n--; slot.n == 0 {
		delete(ac.m, slot.key)
	}
	ac.mu.Unlock()
}
