package memory

// Eviction samples (see the package doc): how many streams one round compares, how many it may
// look at to find them (skipping busy or empty ones), and how many rounds one call may take. A
// round frees at least one publication or one stream and takes about 4 µs: making room for a
// 64 KiB publication in a cap full of one-publication streams takes ~100 rounds (0.5 ms), and
// 1,024 rounds hold the broker's mutex for about 4 ms before a Publish lets it go and tries again.
const (
	evictSamples = 5
	evictLooks   = 4 * evictSamples
	evictRounds  = 1024

	evictStreamRounds = 4
)

// What the samples look for, and which of two goes first: for bytes, the stream whose oldest
// publication is oldest; for channels, the least recently published stream nobody subscribes to.
func hasHistory(s *stream) bool { return s.n > 0 }
func olderHistory(s, than *stream) bool {
	return s.entries[s.head].at.Before(than.entries[than.head].at)
}
func unwatched(s *stream) bool             { return !s.interest }
func publishedBefore(s, than *stream) bool { return s.published.Before(than.published) }

// makeRoom evicts history until need more bytes fit under MaxBytes, for a publication to mine;
// false when it cannot.
func (b *Broker) makeRoom(need int64, mine *stream) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.closed && b.evictBytes(need, mine)
}

// evictBytes drops the oldest history of sampled streams until need more bytes fit under
// MaxBytes; false when a round found nothing more to drop. Out of rounds it returns true: room was
// made, and the caller tries again. A stream left empty and unwatched is removed, unless it is
// mine, the one that needs the room: its publication keeps its epoch. Called with b.mu.
func (b *Broker) evictBytes(need int64, mine *stream) bool {
	for range evictRounds {
		if b.bytes.Load()+need <= b.opts.MaxBytes {
			return true
		}
		s := b.sample(hasHistory, olderHistory)
		if s == nil {
			return false
		}
		var freed int64
		for s.n > 0 && b.bytes.Load()-freed+need > b.opts.MaxBytes {
			freed += s.dropOldest()
		}
		freed += s.fit()
		b.reserve(-freed)
		if s.n == 0 && !s.interest && s != mine {
			b.remove(s)
		}
		s.mu.Unlock()
	}
	return true
}

// evictStream removes the least recently published stream with no subscriber among a few
// sampled; false when it found none. Called with b.mu.
func (b *Broker) evictStream() bool {
	for range evictStreamRounds {
		s := b.sample(unwatched, publishedBefore)
		if s != nil {
			b.remove(s)
			s.mu.Unlock()
			return true
		}
	}
	return false
}

// sample looks at up to evictLooks streams from a random place in the map, skipping busy ones
// and those not ok, and returns the first by before of the evictSamples it compared, locked; nil
// when none was ok. Called with b.mu.
func (b *Broker) sample(ok func(*stream) bool, before func(s, than *stream) bool) *stream {
	var best *stream
	looks, found := 0, 0
	for _, s := range b.streams { // Go starts each range at a random place
		if looks == evictLooks || found == evictSamples {
			break
		}
		looks++
		if !s.mu.TryLock() { // busy, perhaps delivering: never wait with b.mu held
			continue
		}
		if !ok(s) {
			s.mu.Unlock()
			continue
		}
		found++
		if best != nil && !before(s, best) {
			s.mu.Unlock()
			continue
		}
		if best != nil {
			best.mu.Unlock()
		}
		best = s
	}
	return best
}
