package metrics

import (
	"sync"
	"time"
)

// ServerMaxAge is how long the binary reuses one wsgate.Server.Metrics snapshot (through a
// Shared). Server.Metrics reads every live connection's counters under the registry's locks,
// about 13 ms of one core per 100,000 connections; /metrics may be public, and every open admin
// page scrapes it each second. With the snapshot shared, the walks are at most one per
// ServerMaxAge whatever the number of scrapes, and the server's counters a scrape shows are at
// most that old (the hub's and the gateway's, cheap to read, are read at the scrape itself).
const ServerMaxAge = time.Second

// Shared shares the snapshots of read among their callers: one at most maxAge old, counted from
// when its read began, is reused; a caller that comes while a read is under way waits for that
// read (single flight) rather than start its own. Reads are one at a time, each begun after the
// one before it ended, so a newer snapshot only ever replaces an older one: a counter that only
// grows in read's answers never goes back between two calls of Get. A snapshot is handed to
// every caller as is: a T holding slices or maps must not be modified. It is safe for concurrent
// use.
type Shared[T any] struct {
	read   func() T
	maxAge time.Duration

	mu      sync.Mutex
	at      time.Time     // when the read of val began; zero: no snapshot yet
	val     T             // the last snapshot
	pending chan struct{} // closed when the read under way ends; nil: none under way
}

// NewShared returns a Shared of read's snapshots that reuses one for maxAge (0: only among the
// callers that wait for the same read).
func NewShared[T any](read func() T, maxAge time.Duration) *Shared[T] {
	return &Shared[T]{read: read, maxAge: maxAge}
}

// Get returns a snapshot: the last one if it is less than maxAge old; else the one under way, once
// it ends; else a new one, read by this caller (read does not take a context: Server.Metrics
// does not block, it only takes time). If that read panics, the panic is this caller's, and the
// callers waiting for it get the snapshot before.
func (s *Shared[T]) Get() T {
	s.mu.Lock()
	if !s.at.IsZero() && time.Since(s.at) < s.maxAge {
		v := s.val
		s.mu.Unlock()
		return v
	}
	if wait := s.pending; wait != nil {
		s.mu.Unlock()
		<-wait
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.val // the read it waited for, or a newer one
	}
	wait := make(chan struct{})
	s.pending = wait
	s.mu.Unlock()
	return s.refresh(wait)
}

// refresh reads a snapshot, keeps it, and wakes the callers waiting on wait.
func (s *Shared[T]) refresh(wait chan struct{}) T {
	start := time.Now()
	defer func() {
		s.mu.Lock()
		s.pending = nil
		s.mu.Unlock()
		close(wait)
	}()
	v := s.read()
	s.mu.Lock()
	s.val, s.at = v, start
	s.mu.Unlock()
	return v
}
