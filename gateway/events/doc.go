// Package events tells the application's backend of every connection that connects and ends,
// at least once: the gateway's connect and disconnect hooks, delivered through a broker.Outbox
// so that a backend that was down for a minute, or a node that died, loses nothing it was
// promised.
//
// # Model
//
// A Sender has two goroutines. Connected and Disconnected build the events and queue the work
// for the outbox in memory (bounded by Options.QueueLen), and return: they never wait on the
// network. The feeder moves that work into the outbox, in order: Connected puts the connect
// event and holds, under the client's name, the disconnect event another node delivers if this
// one is lost ("node lost", node_lost true); Disconnected puts the disconnect event and
// releases the held one. The deliverer consumes the outbox and POSTs each event, as JSON
// (Event), to Options.URL, one event per request: a 2xx acknowledges it; anything else (an
// error, a timeout, a 3xx, 4xx or 5xx) is tried again after a backoff that doubles from
// MinBackoff to MaxBackoff with jitter, for as long as it takes. A backend must therefore
// answer 2xx to an event it does not want (a duplicate, an unknown user): an event it keeps
// refusing holds up the ones behind it, and the log says so.
//
// One event per request, one in flight: that is what keeps the order (below) across retries
// and nodes. The rate is one event per round trip to the backend (with NATS, plus about two to
// JetStream).
//
// # Guarantees
//
//   - At least once. Every event that reached the outbox is POSTed until the backend answers
//     2xx. An event may arrive twice (an acknowledgement lost, a node that died while posting,
//     a lost node's disconnect after its own): Event.ID (node, client and type) is the same
//     each time; deduplicate on it.
//   - In order per connection, and across connections in the order they reached the outbox:
//     the outbox offers one event at a time, and one it offers again comes before anything
//     after it. So a connection's connect comes before its disconnect.
//   - A disconnect for every connect: while a connection is open its disconnect is held; if its
//     node is lost, another node delivers it with node_lost true, code 1006, reason "node
//     lost", and as time the moment its delivery began.
//
// # What is lost, when
//
//   - With the in-memory outbox (Options.Outbox nil, or broker/memory's): everything lives in
//     the process. If it dies, its queued events and its open connections' disconnects die
//     with it; Close waits (within its context) for the backend to take what is queued, and
//     logs what it could not.
//   - With broker/nats: nothing the outbox acknowledged is lost, not to a node's death, nor to
//     a NATS restart (file storage), as long as the stream's store survives. A dead node's open
//     connections get their disconnect events from another node within NodeTTL and a third
//     (15 to 20 s by default). What the dead node had not moved into the outbox yet (the work
//     queued in memory, normally gone within a round trip to NATS) is lost. A node cut from
//     NATS beyond NodeTTL counts as dead: its connections' disconnects are delivered although
//     they may still be open, and their real disconnects later carry the same IDs.
//   - Beyond QueueLen calls waiting for the outbox (it is unreachable or full), a call's events
//     are dropped: counted in Stats.Dropped and logged (at the 1st, 2nd, 4th... drop). A
//     disconnect dropped leaves its held event held: it is delivered if the node is lost
//     later. A connect whose disconnect the outbox cannot hold (its bound on held events) is
//     counted in Stats.Unheld and logged.
//
// # Bounds
//
// Memory: QueueLen calls (each two events of a few hundred bytes) in front of the outbox, plus
// the outbox's own bounds (memory.OutboxOptions, nats.OutboxOptions: queued events by count and
// bytes, held events by count and bytes). Client names are at most MaxClientLen bytes. One POST
// at a time per Sender, bounded by Timeout; at most 64 KiB of an answer is read.
//
// # Concurrency
//
// Connected, Disconnected and Stats are safe for concurrent use and cheap (a mutex, two JSON
// encodings). The caller calls Connected before Disconnected for a connection, once each (the
// hub's OnConnect and OnDisconnect do). Close stops both goroutines and waits for them.
package events
