// Package hub is wsgate's pub/sub layer: channels, publish and subscribe, presence, history and
// recovery after a reconnect, spoken over the wsgate.v1 subprotocol (package protocol).
//
// A Hub wraps the application's wsgate.Handler: connections that negotiated wsgate.v1 are served by
// the Hub, the others (raw mode, the seed's behaviour) go to the application unchanged. The Hub
// keeps its own registry of its connections: Conn.Data stays the application's. Moving
// publications between nodes and keeping history is the broker's job (package broker);
// broker/memory is the embedded default for one process, broker/nats the one for several.
//
// # The gateway's seam
//
// The hub reads no token and no configuration: it asks the hooks of Options and keeps what they
// answer (gate.go). With Options.Connect, a connection's first request must be a connect: the
// hook's Identity (user, info shown in presence, expiry, server-side channels) becomes the
// connection's, and the hub enforces it: 109 before a connect, close 4002 at ConnectTimeout, a
// "refresh" push at the expiry and close 4501 a RefreshGrace later unless a refresh lands first.
// These deadlines share one heap served by the hub's loop with one timer: no goroutine and no
// timer per connection. Authorize, Publish and RPC see the identity and the request; Channel
// gives a channel's namespace's options. OnConnect and OnDisconnect frame every connection that
// connected (every wsgate.v1 connection without Connect) exactly once each. The server-side
// methods (Identity, Subscribe, Unsubscribe, Channels, PresenceStats, RemoveHistory,
// PublishOnce, Cluster) are what the gateway's API builds on.
//
// # Several nodes
//
// On a broker with the broker.Cluster capability (broker/nats), hubs in several processes form
// one cluster: publications cross nodes through the broker, and presence through the hub's own
// replication over Cluster (see cluster.go): every node keeps a replica of every other node's
// subscribers, from numbered deltas, heartbeats and snapshots, so presence pages and join/leave
// pushes never wait on another node. A node not heard from for PresenceTTL leaves every presence
// list, with leave pushes. In a cluster a connection is named "node:id" in presence.
//
// # Delivery
//
// A publication is encoded once and the same bytes are queued to every local subscriber
// (wsgate.Conn.SendPrepared), so a slow subscriber falls under its connection's slow-consumer
// policy and never delays the others. Per channel, publications reach a subscriber in offset
// order without duplicates, including across a recovering subscribe: the missed publications come
// in the subscribe reply (paged: the rest from history when it says "more"), then the live ones.
// Offsets are contiguous: a publication the connection's policy dropped shows as a jump in
// offset, and a "gap" push tells the client when no later publication could.
//
// # Tracing
//
// With Options.Tracer set (the binary's OpenTelemetry adapter), a client's publish request, the
// publication's broker call and its delivery on every node are spans of one trace: the broker
// carries the publication's trace context to each node (broker.ContextWithTrace,
// broker.Publication's Trace), where the delivery span counts the local subscribers. The hub
// imports no tracing library; without a Tracer it makes no call and allocates nothing more
// (TestTracingOffAllocatesNothingMore).
//
// # Bounds
//
// Every request waits for room in the connection's send queue first, so that a client pipelining
// faster than it reads is slowed down by TCP; a reply is sized to what the queue takes (paged
// with "more"), never encoded to be dropped, and a reply that still cannot be queued closes the
// connection with 1013. Requests are rate-limited per connection (error 203); presence replies are
// paged; joins and leaves are gathered into one push per channel per PresenceInterval, so churn on
// a channel of n watchers costs at most n pushes per interval.
//
// # Concurrency
//
// All methods are safe for concurrent use. Lock order: broker stream → Hub.mu → channel.mu →
// Hub.pmu, channel.mu → cluster.mu, channel.mu → connection queue, and client.mu → Hub.dl.mu
// (client.mu → connection queue when a deadline closes or pushes); channel.sem (one per channel)
// is held around the broker's Subscribe and Unsubscribe for that channel, with no other lock but
// a brief Hub.mu. No lock is held while waiting on the network, and user hooks (Connect, Refresh, Authorize, Publish, RPC,
// Channel, OnConnect, OnDisconnect, UserID) are called without hub locks.
package hub
