package memory

import (
	"sync"
	"time"
)

// stream is one channel's history: a ring that grows with its content up to HistorySize and
// shrinks when a quarter full.
type stream struct {
	mu        sync.Mutex
	name      string // the map's key too: the name is stored once a stream
	epoch     string
	offset    uint64
	entries   []entry // ring, oldest first from head
	head      int
	n         int
	published time.Time     // last publication, for eviction (least recently published first)
	interest  bool          // this node subscribed: keep the stream (and its epoch) while it is empty
	size      int           // publications kept (0: none), from the channel's namespace
	ttl       time.Duration // how long they are kept
	dead      bool          // removed from the map: a Publish that raced with the removal looks again
}

// entry is one publication kept: its channel and epoch are the stream's, its offset follows
// from its place in the ring, so only its data and time are stored.
type entry struct {
	data []byte
	at   time.Time
}

// grownLen is the ring's length once it must grow to take one more entry, up to size.
func (s *stream) grownLen(size int) int { return min(max(2*len(s.entries), 4), size) }

// pushCost is what push(data) adds to what s holds (negative: frees). Called with s.mu.
func (s *stream) pushCost(data []byte, size int) int64 {
	cost := entryCost(data)
	if s.n == len(s.entries) {
		if s.n < size {
			cost += ringCost(s.grownLen(size)) - ringCost(len(s.entries))
		} else {
			cost -= entryCost(s.entries[s.head].data) // the oldest makes room
		}
	}
	return cost
}

// push appends e, growing the ring up to size entries, then overwriting the oldest; pushCost
// says what it costs.
func (s *stream) push(e entry, size int) {
	if s.n == len(s.entries) && s.n < size {
		s.resize(s.grownLen(size))
	}
	if s.n < len(s.entries) {
		s.entries[(s.head+s.n)%len(s.entries)] = e
		s.n++
		return
	}
	s.entries[s.head] = e
	s.head = (s.head + 1) % len(s.entries)
}

// resize moves the ring's entries into a ring of k slots (k ≥ n; 0: none).
func (s *stream) resize(k int) {
	var ring []entry
	if k > 0 {
		ring = make([]entry, k)
		for i := range s.n {
			ring[i] = s.entries[(s.head+i)%len(s.entries)]
		}
	}
	s.entries, s.head = ring, 0
}

// dropOldest forgets the oldest entry and returns what it held; the ring keeps its slots until
// fit. Called with s.mu and s.n > 0.
func (s *stream) dropOldest() int64 {
	freed := entryCost(s.entries[s.head].data)
	s.entries[s.head] = entry{}
	s.head = (s.head + 1) % len(s.entries)
	s.n--
	return freed
}

// fit shrinks the ring to its content after entries were dropped: it goes when empty, halves (at
// least) when a quarter full. It returns what that freed.
func (s *stream) fit() int64 {
	k := len(s.entries)
	switch {
	case s.n == 0:
		k = 0
	case k > 4 && s.n <= k/4:
		k = max(2*s.n, 4)
	default:
		return 0
	}
	freed := ringCost(len(s.entries)) - ringCost(k)
	s.resize(k)
	return freed
}

// held is what s holds now, its stream cost included. Called with s.mu.
func (s *stream) held() int64 {
	sum := streamCost(s.name) + ringCost(len(s.entries))
	for i := range s.n {
		sum += entryCost(s.entries[(s.head+i)%len(s.entries)].data)
	}
	return sum
}
