// Package nats is a broker.Broker and broker.Cluster on NATS JetStream, for wsgate nodes in
// several processes: an external NATS cluster, or a NATS server each process embeds.
//
// # Model
//
// One JetStream stream (Options.Stream, file storage) holds every channel's history, bounded
// per channel by HistorySize publications and HistoryTTL (or its namespace's: see Namespaces),
// and in all by MaxBytes (the oldest publications of all channels go first). A publication is stored on its channel's subject;
// once stored, the stream republishes it on the channel's delivery subject, where the nodes
// that have subscribers for the channel listen with a core NATS subscription. So a node gets
// only the channels it subscribed to (interest per node, not a firehose), and only what was
// stored reaches anyone.
//
// A channel's offsets and epoch travel in headers of its stored messages (Wsgate-Offset,
// Wsgate-Epoch), and a traced publication's trace context in a traceparent header
// (broker.ContextWithTrace), which the republication carries to every node's delivery. Each Publish carries the stream sequence of the channel's last message as it
// knows it (Nats-Expected-Last-Subject-Sequence); the stream refuses a publication whose
// expectation is stale, and the publisher reads the new top from the stream's leader and tries
// again. So offsets are contiguous across all the nodes that publish to a channel, and a new
// epoch starts only when the channel has no message left (all of it expired or evicted, or the
// stream was lost).
//
// # Namespaces
//
// Options.Namespaces give channels by prefix bounds of their own, in the same one stream:
//
//   - Age: the stream's MaxAge is the longest of all ages; a publication whose channel's age is
//     shorter carries it as a message TTL (the Nats-TTL header, whole seconds, nats-server 2.11
//     or later), and the stream drops it then.
//   - Count: the stream keeps per channel (MaxMsgsPerSubject) the largest count of all; History
//     returns at most the channel's own count, the latest, and reports what is before them as
//     gone (complete false). A namespace that keeps no history (HistorySize 0) has its
//     publications roll the channel up (Nats-Rollup: sub): the stream keeps only its last message,
//     which carries its offsets on, and History returns none. A node's own catch-ups (gap
//     filling) read all the stream holds: what its subscribers missed in transit reaches them
//     as far as it is stored, the last publication of a channel without history included.
//
// Why not a stream per namespace (ARCHITECTURE.md's first sketch)? A stream's MaxMsgsPerSubject
// would bound the count physically, but a channel's stream would then depend on the list: a
// namespace added, removed or renamed on a restart, or a rolling restart in which nodes disagree
// for a while, would move channels between streams (new epochs, history stranded in a stream
// nobody reads) or split one channel between two (two epochs at once). In one stream a change of
// the list changes bounds only: Start updates the stream, channels keep their subjects, epochs
// and offsets, and every guarantee below (the expected-last-sequence check, the leader's top, the
// batched check of tops, the leader-election advisory) stays the one stream's. What it costs: a
// channel of a namespace with a smaller count may hold up to the largest count in the stream
// (bounded in all by MaxBytes and its age), and namespaces share MaxBytes. A publication outside
// any namespace, with no namespace list, carries no extra header.
//
// RemoveHistory purges the channel's subject (the stream purge API, answered by the leader once
// applied). The channel then has no message, so its next publication starts a new epoch
// wherever it is made: a node whose publication expects the old top is refused by the stream
// and reads the empty one.
//
// PublishOnce adds a Nats-Msg-Id (the channel and key, hashed) to the publication: the stream's
// duplicate window (DedupWindow, default 2 minutes, at most the longest age) deduplicates it
// across all nodes, and a duplicate's acknowledgement names the first's sequence, whose position
// PublishOnce reads from the leader.
//
// # Subjects
//
// A channel or topic name maps onto one subject token: bytes other than letters, digits and
// _-:@/ become %XX (upper-case hex), so "room.1" is "room%2E1"; the mapping is reversible and no
// name can make a wildcard or a second token. Under Options.Prefix (default "wsgate"):
//
//	<prefix>.in.<token>   stored publications (the stream's subjects)
//	<prefix>.d.<token>    their republication, once stored: what nodes subscribe to
//	<prefix>.x.<token>    cluster messages (Send, Listen)
//
// Names are bounded at 1,024 bytes (protocol.MaxChannelLen is 255), which keeps a subject
// within the server's control line.
//
// # Guarantees
//
//   - Publish returns a position only once the stream has acknowledged the publication. An error
//     wrapping broker.ErrUnavailable (NATS down, no JetStream quorum, no answer within Timeout)
//     means it was not acknowledged; it may have been stored all the same when the ack was lost,
//     in which case it is delivered and its offset taken. Publish never fails with
//     broker.ErrFull: with discard-old the stream makes room by dropping its oldest publications.
//   - A node delivers each channel's publications in offset order, one call at a time per
//     channel, each at most once. Core NATS may lose some (a NATS node restart, a slow
//     consumer): a jump in offsets holds what came after and reads the missing ones from
//     history first, and so does a publication of a new epoch whose offset is not 1 (the new
//     epoch is read from its start); after a reconnect, or when nats.go reports a slow
//     consumer, each channel concerned reads what it missed at once. A lost publication that
//     nothing follows shows no jump (a stream leader lost right after it acknowledged, a
//     partition this node's connection survived): every CheckInterval (5 s), and when the stream
//     elects a leader, the node reads the tops of all its channels, and those whose top is
//     ahead of what it delivered catch up. So a lost publication reaches a subscribed node
//     within CheckInterval and a fraction of a second, or at the next reconnect. What history
//     no longer has is skipped, and the hub sees the jump.
//   - Publications acknowledged after Subscribe returned are delivered; those made while it runs
//     may or may not be (the hub recovers them from History). In a cluster the interest takes
//     a moment to reach the server of the stream's leader, which republishes: Subscribe waits
//     for it there (a publication the stream refuses, sent on the interest's route) and
//     delivers what was stored meanwhile from history.
//   - History creates nothing, and holds every publication acknowledged before it was called
//     (within the history kept): it reads the channel's top from the stream's leader, then the
//     range with direct gets, which any replica may answer; what a replica a moment behind its
//     leader does not hold yet, up to that top, is read from the leader.
//   - Ordering across channels, and across nodes beyond one channel's offsets, is not defined.
//
// # Outbox
//
// The broker is a broker.Outbox too, set up on the server by its first call (OutboxOptions):
//
//   - Queued events live in a work-queue stream, <Stream>_OUTBOX (file storage, Replicas,
//     discard new: beyond MaxEvents or MaxBytes, Put fails with broker.ErrFull), on the subject
//     <prefix>.ob.q. Put returns once the stream acknowledged the event: from then on it
//     survives this node and a NATS restart, and is lost only with the stream's store.
//   - Every node's Consume pulls from one durable consumer that reserves one event at a time in
//     the whole cluster (MaxAckPending 1), so events are offered in the order stored, whichever
//     node offers them. A node renews its reservation every NodeTTL/3 while fn runs; fn's nil
//     acknowledges, its error hands the event back for another offer after Retry; a node that
//     dies with an event reserved leaves it to another after NodeTTL. The price of the order is
//     one event in flight in the cluster: the rate is one event per round trip of fn (the
//     backend) and one to NATS (the acknowledgement goes ahead of the next pull, unconfirmed: a
//     lost one has the event offered again).
//   - Held events live in the stream <Stream>_HELD, one subject per node and key
//     (<prefix>.ob.h.<node>.<key>, one message each: holding again replaces); Release purges
//     the subject (one API call). Beyond MaxHeld or MaxHeldBytes in all, Hold fails with
//     broker.ErrFull.
//   - Each node that used the outbox has an entry in the key-value bucket <Stream>_NODES, which
//     it updates every NodeTTL/3. Each node watches the others' entries by their revisions, on
//     its own clock (no other machine's clock is trusted): an entry it saw unchanged for NodeTTL
//     is a lost node, which it claims by an update expecting that revision, so that exactly one
//     node claims it. The claimer queues the lost node's held events (each with a message ID,
//     stored once within two minutes should a second claim repeat the work), purges them up to
//     the held stream's last sequence when it began, and purges the entry (its marker expires
//     after a minute, so the bucket does not grow with every start of a node). A claim that fails
//     halfway leaves the entry claimed and still, and some node claims it again after NodeTTL.
//     So a dead node's held events are queued between 2/3 and 5/3 of NodeTTL after its death
//     (its last heartbeat was up to NodeTTL/3 before it; the claim comes three or four
//     heartbeat periods after a node first saw it): 10 to 25 s by default, 1.35 to 1.64 s
//     measured with NodeTTL 1 s (gateway/events TestNATSKilledNode), as long as one node lives.
//   - A node that was only cut from NATS (or stalled) beyond NodeTTL is declared lost all the
//     same: its held events are delivered although its connections may be open. It logs an
//     error when it finds its entry claimed, registers again once the claim is over, and what
//     it holds after the claim began stays held.
//
// # Cost
//
// A publication costs one round trip to the stream's leader (store, replicate, ack), whether or
// not anyone subscribes: on this project's shared 2-core test machine, with an in-process server
// on loopback, a median of about 130 µs and 57 allocations (server included) with no subscriber,
// and 145 µs and 77 allocations with one subscribed node (BenchmarkPublishNoSubscribers,
// BenchmarkPublishOneSubscriber). A publication to a channel nobody subscribes to is stored and
// its republication is dropped by the server at the subject lookup: no node receives a byte of
// it. The first publication of a channel on a node (or after an error, or after another node
// published to it) adds a round trip to read the channel's top. A node remembers the top of at
// most 16,384 channels.
//
// A publication in a namespace with an age of its own carries a message TTL, and a PublishOnce a
// Nats-Msg-Id: 7 more allocations each (server included), within the noise in time; a duplicate
// adds a read of the first from the leader (BENCHMARKS.md, "Broker costs").
//
// The periodic check costs one direct get (its multi_last form, which any replica answers) per
// 128 subscribed channels; the answer holds each channel's last publication, its payload and
// about 640 bytes besides (headers, subject). With 1,000 channels of 64-byte publications
// (BenchmarkCheck, in-process server included) a check takes about 20 µs, 705 bytes received,
// 10 KB and 80 allocations per channel: a node subscribed to 10,000 channels spends about 0.2 s
// of CPU every 5 s on it. A channel found behind costs a history read, made after 200 ms in
// which a publication still on its way arrives and makes it unneeded.
//
// History reads the channel's top as the stream's leader has it (in a cluster, the stream
// message get API, answered by the leader; on a lone server, a direct get), then the range
// with batched direct gets, which the nearest replica answers. A recovering client's read of
// the last 10 of 100 publications (BenchmarkHistory, median of 3, in-process servers included)
// takes about 0.96 ms, 117 KB and 1,010 allocations on one server, and 1.65 ms, 147 KB and 1,214
// allocations from a follower of an R3 stream on three servers; before the top came from the
// leader (and with a batch inbox of nats.go's 64k-message channel), 1.38 ms, 642 KB, 1,015
// allocations and 1.94 ms, 660 KB, 1,115 allocations: the leader's read is within this
// machine's noise. What a lagging replica lacks costs a round trip to the leader per missing
// publication. A node makes at most 16 history reads at once for its catch-ups (and checks):
// after a reconnect every subscribed channel catches up, and thousands of reads of the top from
// the stream's leader at once would overflow JetStream's API queue (10,000 requests by
// default), which then drops them all. In a cluster, Subscribe costs two reads of the top from the leader and a refused
// publication besides the subscription (BenchmarkSubscribe: 0.93 ms from a follower, 0.33 ms
// before; 0.32 ms on one server, 0.18 ms before).
//
// # Concurrency
//
// All methods are safe for concurrent use. Publications to one channel are serialized on a node
// (a per-channel lock that a waiting Publish leaves when its context ends). Every channel
// subscription feeds one dispatcher goroutine; one more checks the channels' tops; a catch-up
// runs in a goroutine of its own per channel (at most 16 of them read history at once), and
// delivery for a channel is done under its lock by one of them at a time. Lock order: a subscription's lock before the broker's. Every goroutine is owned by the
// broker and waited for by Close; Listen's callbacks run on nats.go's goroutine for that
// subscription, and fn must not call the cancel func of its own Listen.
//
// All nodes must use the same Stream, Prefix and history options, Namespaces included: Start
// updates the stream to its own options. While they differ (a rolling restart that changes the
// list), each publication carries the age of the node that made it, and each History applies the
// count of the node that reads it; offsets and epochs are not affected.
package nats
