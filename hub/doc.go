// Package hub is wsgate's pub/sub layer: channels, publish and subscribe, presence, history and
// recovery after a reconnect, spoken over the wsgate.v1 subprotocol (package protocol).
//
// A Hub wraps the application's wsgate.Handler: connections that negotiated wsgate.v1 are served by
// the Hub, the others (raw mode, the seed's behaviour) go to the application unchanged. Moving
// publications between nodes and keeping history is the Broker's job; broker/memory is the
// embedded default for one process.
//
// # Delivery
//
// A publication is encoded once and the same bytes are queued to every local subscriber
// (wsgate.Conn.SendPrepared), so a slow subscriber falls under its connection's slow-consumer
// policy and never delays the others. Per channel, publications reach a subscriber in offset
// order, without gaps or duplicates, including across a recovering subscribe: the missed
// publications come in the subscribe reply, then the live ones.
//
// # Concurrency
//
// All methods are safe for concurrent use. Lock order: broker stream → hub channel → connection
// queue; no lock is held while waiting on the network, and user hooks (Authorize, UserID) are
// called without hub locks.
package hub
