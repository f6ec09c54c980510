package hub

import (
	"context"
	"errors"

	"github.com/wsgate/wsgate/protocol"
)

// Publication is one message of a channel's stream as a Broker moves it.
type Publication struct {
	Channel string
	Epoch   string
	Offset  uint64
	Data    []byte // JSON; immutable once published
}

// HistoryResult is what a Broker knows of a channel's stream.
type HistoryResult struct {
	// Top is the stream's current position: its epoch and the offset of its last publication.
	Top protocol.Position
	// Complete is false when publications after the requested position are no longer kept, or the
	// epoch changed: the caller missed something it cannot get back.
	Complete bool
	// Publications after the requested position (or the latest ones), oldest first.
	Publications []Publication
}

// DeliverFunc receives every publication of the channels a node subscribed to, in offset order per
// channel, one call at a time per channel.
type DeliverFunc func(Publication)

// Broker moves publications between nodes and keeps each channel's history.
//
// Implementations must pass the conformance suite in hub/brokertest.
type Broker interface {
	// Start begins delivering publications to deliver; it is called once, before anything else.
	Start(ctx context.Context, deliver DeliverFunc) error
	// Publish appends data to the channel's stream and returns its position. Delivery to this and
	// other nodes' subscribers happens through their DeliverFunc.
	Publish(ctx context.Context, channel string, data []byte) (protocol.Position, error)
	// Subscribe and Unsubscribe declare this node's interest in a channel; a broker may deliver a
	// channel's publications only to nodes that subscribed.
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error
	// History returns up to limit publications after since (since nil: the latest ones) and the
	// stream's top position. A stream that does not exist yet is created, so that its epoch is
	// stable from the first subscriber on.
	History(ctx context.Context, channel string, since *protocol.Position, limit int) (HistoryResult, error)
	// Close stops delivery and releases resources.
	Close(ctx context.Context) error
}

// ErrBrokerClosed is returned by a Broker after Close.
var ErrBrokerClosed = errors.New("hub: broker closed")
