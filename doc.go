// Package wsgate is a WebSocket server runtime: an http.Handler that upgrades requests (RFC 6455)
// and runs each connection with a Handler, with bounded memory, heartbeats and clean closes.
//
// # Model
//
// A Server is mounted on a route and given a Handler. For every connection it calls OnOpen, then
// OnMessage for each message in order, then OnClose exactly once. The handler answers with
// Conn.Send, which frames the message, queues it and returns at once. What a callback queued is
// written by the reader goroutine when the callback returns, without blocking, as a raw echo
// server writes in its read loop; everything else, and whatever the socket does not take at once,
// by a writer goroutine that exists only while there is something to write and drains the queue
// in batches (several small messages leave in one write(2)). The seed's demo, an echo that answers
// "<msg> done", is:
//
//	srv, _ := wsgate.NewServer(wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
//		c.Send(m.Type, append(m.Data, " done"...))
//	}), nil)
//	http.Handle("/ws", srv)
//
// # Concurrency
//
// Every exported method is safe for concurrent use. Per connection there is at most one reader
// goroutine, which also runs the Handler (so a connection's callbacks never overlap), and at most
// one writer goroutine; one of the two writes at a time. Heartbeats are driven by one ticker per
// Server. On Linux, a plain TCP connection that completed no frame for Config.ParkAfter is parked:
// its reader goroutine and read buffer are given back and its socket waits on the Server's epoll
// instance; when the peer sends again, a reader resumes where the last one stopped, in order. An
// idle connection then costs no goroutine (over TLS, or elsewhere, one). docs/RUNTIME.md has the
// states, the goroutines and their owners.
//
// # Limits and policies
//
// Incoming messages are limited by Config.ReadLimit (1009 beyond it). Each connection's send queue
// is bounded in messages and bytes; a full queue applies Config.SlowConsumer: close with 1013 "slow
// consumer" (the default; a client reconnects and recovers), drop the newest, or drop the oldest,
// and never blocks the sender. A peer that completes no frame for PingInterval is pinged and
// disconnected if it completes none for PongTimeout more.
//
// Handshakes are bounded before they are paid for: a request over Config.MaxHeaderBytes is
// refused (414, 431) whatever the http.Server in front allows, a connection keeps of its request
// only the headers Config.KeepHeaders names, and Config.MaxConnections and
// Config.MaxConnectionsPerIP cap connections in all (503) and per client address (429). Browsers
// are held to the same origin by default, scheme included; for a server a browser can reach, set
// Config.AllowedHosts, or a DNS-rebinding page passes as its own origin.
//
// # Closing
//
// Conn.Close writes what is queued, then a close frame, and waits for the peer's; the whole close
// is bounded by Config.CloseTimeout. From Close on nothing the peer sends reaches the handler, and
// little of it is read (4 MiB at most, looking for its close frame); our side of the socket is shut
// (FIN) right after our close frame. Conn.CloseNow drops the TCP connection. Server.Shutdown
// refuses new upgrades (503) and closes every connection with 1001 after its queued messages.
// Errors on the wire are precise: 1002 for protocol violations, 1007 for invalid UTF-8 or corrupt
// compressed data, 1009 for oversized messages (or too many frames in one), 1008 for a message
// slower than Config.MessageTimeout, 1011 when a handler panics (the panic is recovered and
// logged), 1013 "slow consumer" (see CloseCode.Reconnectable). OnClose receives a *CloseError
// saying why.
//
// The transport is github.com/lxzan/gws, carried with wsgate's fixes inside this module
// (internal/gws), so that importers get them: it reads, unmasks and validates frames, negotiates
// permessage-deflate and compresses; none of its types appear in this API. Outgoing frames are
// built by wsgate, once per message: a server frame is a 2 to 10 byte header and the payload,
// unmasked, the same bytes for every connection, so a PreparedMessage is written to all of them
// without a copy.
package wsgate
