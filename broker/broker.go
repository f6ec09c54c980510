// Package broker is the seam between the hub and the engines that move publications between nodes
// and keep each channel's history: the Broker interface, the values it moves, and its errors.
//
// It is a leaf: it imports only the standard library, so a broker (broker/memory, broker/nats)
// depends on neither the hub nor the WebSocket transport. Every implementation must pass the
// conformance suite in hub/brokertest.
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Position is a place in a channel's stream: the epoch names one unbroken history, the offset
// counts publications in it (the first publication has offset 1). The zero Position, with an
// empty epoch, is the place before the first publication of a stream that does not exist yet.
type Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// Publication is one message of a channel's stream. Its JSON form is what a client sees inside a
// reply ({"offset":..,"data":..}); channel and epoch travel beside it.
type Publication struct {
	Channel string          `json:"-"`
	Epoch   string          `json:"-"`
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data"` // JSON; immutable once published
}

// HistoryResult is what a Broker knows of a channel's stream after a requested position.
type HistoryResult struct {
	// Position is the stream's top: its epoch and the offset of its last publication.
	Position
	// Complete is false when publications after the requested position are no longer kept, or
	// the epoch changed: the caller missed something it cannot get back.
	Complete bool `json:"complete"`
	// More is true when publications after the last one returned exist but were left out (limit):
	// ask again from the last one returned.
	More bool `json:"more,omitempty"`
	// Publications after the requested position (or the latest ones), oldest first.
	Publications []Publication `json:"publications"`
}

// DeliverFunc receives every publication of the channels a node subscribed to, in offset order per
// channel, one call at a time per channel. It must not block: it queues and returns.
type DeliverFunc func(Publication)

// Broker moves publications between nodes and keeps each channel's history.
//
// Interest: the hub calls Subscribe and Unsubscribe for one channel one at a time, never
// concurrently, and never Unsubscribe without a successful Subscribe before it.
type Broker interface {
	// Start begins delivering publications to deliver; it is called once, before anything else.
	Start(ctx context.Context, deliver DeliverFunc) error
	// Publish appends data to the channel's stream and returns its position. Delivery to this and
	// other nodes' subscribers happens through their DeliverFunc. A broker at capacity refuses
	// with an error wrapping ErrFull.
	Publish(ctx context.Context, channel string, data []byte) (Position, error)
	// Subscribe and Unsubscribe declare this node's interest in a channel; a broker delivers a
	// channel's publications only while this node is subscribed to it.
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error
	// History returns up to limit publications after since (since nil: the latest ones), oldest
	// first, and the stream's top position. Reading never creates a stream: the history of a
	// channel that has none is empty, at the zero Position. A since with an empty epoch asks for
	// the stream from its first publication.
	History(ctx context.Context, channel string, since *Position, limit int) (HistoryResult, error)
	// Close stops delivery and releases resources.
	Close(ctx context.Context) error
}

// Errors a Broker returns; match them with errors.Is.
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("broker: closed")
	// ErrFull is wrapped by the error of a Publish that would exceed the broker's capacity (its
	// bound on channels or bytes of history). The publication was not made; retry later.
	ErrFull = errors.New("broker: at capacity")
	// ErrUnavailable is wrapped by the error of a call that could not reach the broker's backend
	// (a NATS cluster that is down, partitioned or without a JetStream quorum) in time. A Publish
	// that fails with it was not acknowledged by the store; retry later.
	ErrUnavailable = errors.New("broker: unavailable")
)

// Cluster is an optional capability of a Broker whose nodes run in several processes: it names
// this node and carries small messages between nodes, for what the hub shares beside
// publications (presence). Delivery is best effort: at most once, in order from one node, and
// not to the sending node itself. Topics are any strings; the broker maps them onto its
// transport safely.
type Cluster interface {
	// Node names this node: unique in the cluster, and new at every start of the process.
	Node() string
	// Send delivers msg to the nodes listening on topic, this one excepted. It does not wait for
	// them; an error means the message could not be handed to the transport.
	Send(topic string, msg []byte) error
	// Listen calls fn with every message another node sends on topic, until cancel is called.
	// Calls for one topic come one at a time; fn must not block. msg is fn's to keep.
	Listen(topic string, fn func(from string, msg []byte)) (cancel func(), err error)
}

// Health is an optional capability: Ready reports whether the broker can serve publications and
// history now, asking its remote store if it has one, within ctx. It returns nil, or an error
// wrapping ErrUnavailable (or ErrClosed) that says what is missing. A readiness probe (the
// binary's /readyz) calls it; a broker without it is taken as always ready.
type Health interface {
	Ready(ctx context.Context) error
}

// Namespace gives the channels whose names start with Prefix ("chat:") history bounds of their
// own; a broker's options take a list of them, and the longest matching prefix wins. HistorySize
// 0 keeps no history for them (nothing to recover), HistoryTTL 0 the broker's default age.
type Namespace struct {
	Prefix      string
	HistorySize int
	HistoryTTL  time.Duration
}

// HistoryRemover is an optional capability: RemoveHistory forgets a channel's history. The next
// publication starts a new epoch, so a subscriber recovering from before tells that it missed
// what was removed.
type HistoryRemover interface {
	RemoveHistory(ctx context.Context, channel string) error
}

// Outbox is an optional capability: a queue of events (the gateway's connect and disconnect
// hooks) that some node delivers at least once, even when the node that put them is gone.
//
// Put queues an event for delivery. Hold deposits, under a key unique on this node (a
// connection's), the event to deliver if this node dies before it calls Release with that key
// (the connection's disconnect event): when a node is lost, another node puts its held events
// (each implementation says when a node counts as lost, and what a lone process loses). Holding
// again under a key replaces its event; releasing a key that holds nothing is no error.
//
// Consume offers queued events to fn in the order they were put, one at a time in the whole
// outbox (all the nodes sharing it), until ctx ends, and then returns ctx's error. While fn runs
// the event is reserved for it, for as long as fn takes (fn retries as it sees fit). fn returning
// nil acknowledges the event; an error puts it back at the head, to be offered again after a
// short pause, by this or another node. An event whose node dies while fn runs is offered again
// to another node once the implementation finds the reservation abandoned. So delivery is at
// least once and in order: an event acknowledged was delivered; one delivered twice comes
// again before anything put after it.
//
// Queued and held events are bounded: beyond the bounds Put and Hold refuse with an error
// wrapping ErrFull. Every method may fail with ErrClosed, and on a remote store with
// ErrUnavailable (the event may then have been stored all the same).
type Outbox interface {
	Put(ctx context.Context, event []byte) error
	Hold(ctx context.Context, key string, event []byte) error
	Release(ctx context.Context, key string) error
	Consume(ctx context.Context, fn func(ctx context.Context, event []byte) error) error
}

// Deduplicator is an optional capability: PublishOnce publishes data on channel unless a
// publication with the same key was made on it recently (within the broker's deduplication
// window, across every node; each implementation documents it: 2 minutes by default), in which
// case it returns that publication's position and publishes nothing. A client retrying a
// publication after a lost acknowledgement publishes it once. Keys of different channels are
// independent; concurrent calls with one key publish once too. The position is the zero
// Position when the broker no longer knows it (its history was removed or has expired).
type Deduplicator interface {
	PublishOnce(ctx context.Context, channel string, data []byte, key string) (Position, error)
}
