// Package memory is the embedded in-process Broker: one node, history in memory, bounded by count
// and age per channel and by channels and bytes in all. It is the default and needs nothing to run.
//
// # What a peer can make it spend
//
// A stream exists only while its channel has history kept or a local subscriber (Subscribe pins
// it): reading history never creates one, a publication that keeps no history (HistorySize < 0)
// to a channel nobody subscribes to creates none, and a stream whose history expired and that
// nobody subscribes to is freed at once (Unsubscribe) or at the next sweep (a quarter of
// HistoryTTL).
//
// MaxBytes bounds what the streams really hold, as the Go runtime allocates it: each stream (its
// struct, its name, stored once, its map entry), each slot of its ring (the ring grows with its
// content up to HistorySize and shrinks when a quarter full), each payload rounded up to its
// allocation. MaxChannels bounds the streams.
//
// # Eviction
//
// At a bound the broker makes room rather than refusing work, so that one client filling the
// history cannot stop everyone else's publications:
//
//   - Bytes: before a publication that would pass MaxBytes is kept, the oldest history in all
//     channels goes first, in an approximation of LRU: a few streams are sampled (map order is
//     random), the one whose oldest publication is oldest loses its oldest publications, and
//     this repeats until the new one fits. A stream that is busy (delivering) is skipped, never
//     waited for. Streams with subscribers lose history like any other; they are not removed.
//   - Channels: a new stream beyond MaxChannels replaces the least recently published stream
//     with no subscriber among a few sampled. A stream with a subscriber is never removed: its
//     subscribers bound it (the hub bounds subscriptions per connection).
//
// What is evicted is reported as what expires is: a history request or a recovery from a
// position before what is kept gets complete:false, and an evicted stream's next publication
// starts a new epoch. Publish and Subscribe fail with broker.ErrFull only when eviction cannot
// make room: a publication bigger than MaxBytes, every stream pinned by subscribers (or busy),
// or the samples finding nothing to evict. Because the samples are small, an evictable stream
// hidden among very many pinned ones may be missed: the bound holds, the refusal is approximate.
//
// # Outbox
//
// The broker is also a broker.Outbox (and NewOutbox makes one without a broker): a FIFO of events
// bounded by count and bytes, and a map of held events bounded the same way (OutboxOptions);
// beyond them Put and Hold refuse with broker.ErrFull. Put, Hold and Release take a mutex and copy
// the event. Consume calls take turns: one offers events, one at a time, and an event its fn
// refuses stays at the head, offered again after OutboxOptions.Retry. Everything lives in the
// process: when it dies, what was queued and held dies with it (no other node is there to
// deliver a held event), and Close forgets both.
//
// # Concurrency
//
// The broker's mutex guards the map of streams; each stream has its own, held through a
// Publish's delivery so that a channel's publications are delivered one at a time, in order.
// The broker's mutex is taken before a stream's and is never held while waiting for one: under
// it, a stream is only tried (TryLock), and the sweep takes each stream without it.
package memory
