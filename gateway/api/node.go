package api

import (
	"context"
	"encoding/json"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/protocol"
)

// Node is what the API's handlers ask of the server: the gateway implements it over its hub and
// its user registry (package gateway), a test over a bare hub, and apiclient.Client over the
// API of another server. The handlers validate what they pass (channel names, users, limits
// within Options' bounds) and bound every call by Options.Timeout through ctx.
//
// An error that is a *protocol.Error is answered with its HTTPStatus and its code and message
// (a Node returns hub.ErrDraining as protocol.CodeUnavailable, so that callers retry);
// errors.ErrUnsupported (a broker without the capability) with 404 (code 112);
// context.DeadlineExceeded with 503 (code 201); any other error with 500 (code 200) and a
// message that does not repeat it (it is logged).
type Node interface {
	// Publish publishes data (JSON) on channel. A non-empty idempotencyKey makes it idempotent
	// within the node's window: a repeated publish with the same channel and key publishes
	// nothing and returns the position of the first.
	Publish(ctx context.Context, channel string, data json.RawMessage, idempotencyKey string) (broker.Position, error)
	// Broadcast publishes the same data on each of channels, as Publish would (the key applies
	// per channel), and returns one result per channel, in their order: a failure on one does
	// not stop the others. The error is for a failure of the whole call.
	Broadcast(ctx context.Context, channels []string, data json.RawMessage, idempotencyKey string) ([]ChannelResult, error)
	// Subscribe subscribes every connection of user, on every node, to channel from the server
	// side, and returns how many connections it reached (0: the user is not connected).
	Subscribe(ctx context.Context, user, channel string) (connections int, err error)
	// Unsubscribe undoes Subscribe (or the client's own subscribe) on every connection of user.
	Unsubscribe(ctx context.Context, user, channel string) (connections int, err error)
	// Disconnect closes every connection of user, on every node, with the close code (4000-4999)
	// and reason, and returns how many it closed.
	Disconnect(ctx context.Context, user string, code int, reason string) (connections int, err error)
	// Presence returns one page of channel's subscribers on every node, ordered by conn: at
	// most limit of them, after the conn named after ("" from the first). Next names the
	// after of the following page, "" after the last.
	Presence(ctx context.Context, channel, after string, limit int) (protocol.PresenceResult, error)
	// PresenceStats counts channel's subscribers on every node: connections and distinct users.
	PresenceStats(ctx context.Context, channel string) (PresenceStats, error)
	// History returns up to limit publications of channel after since (nil: the latest ones),
	// as broker.Broker.History does.
	History(ctx context.Context, channel string, since *broker.Position, limit int) (broker.HistoryResult, error)
	// RemoveHistory forgets channel's history; its next publication starts a new epoch.
	RemoveHistory(ctx context.Context, channel string) error
	// Channels returns one page of the channels with subscribers on any node whose names start
	// with prefix, ordered by name: at most limit of them, after the name after.
	Channels(ctx context.Context, prefix, after string, limit int) (ChannelsResult, error)
	// Info describes this node and, when it knows them, the other nodes of its cluster.
	Info(ctx context.Context) (NodeInfo, error)
}

// The bodies of the requests, one type per endpoint. Every field is documented in
// api/openapi.yaml; unknown fields are refused.
type (
	// PublishRequest is the body of POST {base}/publish.
	PublishRequest struct {
		Channel        string          `json:"channel"`
		Data           json.RawMessage `json:"data"`
		IdempotencyKey string          `json:"idempotency_key,omitempty"`
	}
	// BroadcastRequest is the body of POST {base}/broadcast.
	BroadcastRequest struct {
		Channels       []string        `json:"channels"`
		Data           json.RawMessage `json:"data"`
		IdempotencyKey string          `json:"idempotency_key,omitempty"`
	}
	// UserChannelRequest is the body of POST {base}/subscribe and {base}/unsubscribe.
	UserChannelRequest struct {
		User    string `json:"user"`
		Channel string `json:"channel"`
	}
	// DisconnectRequest is the body of POST {base}/disconnect. Code 0 means 4003
	// (protocol.CloseDisconnected).
	DisconnectRequest struct {
		User   string `json:"user"`
		Code   int    `json:"code,omitempty"`
		Reason string `json:"reason,omitempty"`
	}
	// ChannelRequest is the body of POST {base}/presence_stats and {base}/history_remove.
	ChannelRequest struct {
		Channel string `json:"channel"`
	}
	// PresenceRequest is the body of POST {base}/presence. Limit 0 means DefaultLimit.
	PresenceRequest struct {
		Channel string `json:"channel"`
		After   string `json:"after,omitempty"`
		Limit   int    `json:"limit,omitempty"`
	}
	// HistoryRequest is the body of POST {base}/history. Since nil asks for the latest
	// publications; Limit 0 means DefaultLimit.
	HistoryRequest struct {
		Channel string           `json:"channel"`
		Since   *broker.Position `json:"since,omitempty"`
		Limit   int              `json:"limit,omitempty"`
	}
	// ChannelsRequest is the body of POST {base}/channels. Limit 0 means DefaultLimit.
	ChannelsRequest struct {
		Prefix string `json:"prefix,omitempty"`
		After  string `json:"after,omitempty"`
		Limit  int    `json:"limit,omitempty"`
	}
)

// The bodies of the answers that are not a type of package broker or protocol.
type (
	// ChannelResult is one channel's outcome in a broadcast: its position, or its error.
	ChannelResult struct {
		Channel string          `json:"channel"`
		Epoch   string          `json:"epoch,omitempty"`
		Offset  uint64          `json:"offset,omitempty"`
		Error   *protocol.Error `json:"error,omitempty"`
	}
	// BroadcastResult answers a broadcast.
	BroadcastResult struct {
		Results []ChannelResult `json:"results"`
	}
	// ConnectionsResult answers subscribe, unsubscribe and disconnect: how many connections
	// of the user it reached.
	ConnectionsResult struct {
		Connections int `json:"connections"`
	}
	// PresenceStats counts a channel's subscribers.
	PresenceStats struct {
		Clients int `json:"clients"`
		Users   int `json:"users"`
	}
	// ChannelInfo is a channel with subscribers, and how many.
	ChannelInfo struct {
		Name        string `json:"name"`
		Subscribers int    `json:"subscribers"`
	}
	// ChannelsResult is one page of channels; Next is the After of the following page.
	ChannelsResult struct {
		Channels []ChannelInfo `json:"channels"`
		Next     string        `json:"next,omitempty"`
	}
	// NodeInfo describes a node.
	NodeInfo struct {
		Name          string `json:"name"`
		Version       string `json:"version"`
		UptimeSeconds int64  `json:"uptime_seconds"`
		Connections   int    `json:"connections"`
		// MessagesReceived and MessagesSent count the WebSocket messages this node's
		// connections have received from their peers and had written to them since the node
		// started (connections since closed included): their rates are the node's traffic.
		MessagesReceived uint64 `json:"messages_received"`
		MessagesSent     uint64 `json:"messages_sent"`
		// Nodes names every node of the cluster this node knows of, itself included; empty
		// on one node.
		Nodes []string `json:"nodes,omitempty"`
	}
	// Empty answers history_remove.
	Empty struct{}
)
