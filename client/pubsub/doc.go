// Package pubsub is a wsgate.v1 client session (docs/PROTOCOL.md) that follows a cluster: it is
// given the URLs of several nodes, connects to one, and when that connection fails or is lost with
// a close code that says come back (wsgate.CloseCode.Reconnectable) it connects to another and
// subscribes again to every channel from the last position delivered, so the publications missed
// meanwhile are recovered when the nodes share their history (a shared broker), or plainly
// reported as lost when they do not (Subscribed.Recovered false).
//
//	s, _ := pubsub.New([]string{"ws://a:8080/ws", "ws://b:8080/ws"}, &pubsub.Options{
//		OnPublication: func(p pubsub.Publication) { fmt.Println(p.Offset, string(p.Data)) },
//	})
//	_ = s.Subscribe("chat", nil)
//	go func() { _ = s.Run(ctx) }()         // until ctx ends, or a terminal close
//	pos, err := s.Publish(ctx, "chat", json.RawMessage(`"hi"`))
//
// # Delivery
//
// Per channel, OnPublication sees every publication once, in offset order: live ones, and those
// fetched from history in their place when the server skipped some (a jump in offsets, a gap
// push, a new epoch that does not start at 1) or when a reconnect recovers them. What history no
// longer holds is reported by OnGap, and delivery goes on after it. This is the JS client's
// behaviour (cmd/wsgate/web/js/wsgate-pubsub.js), in Go.
//
// # Endpoints
//
// The first connection goes to a random endpoint (Options.InOrder: the first), to spread clients
// over the nodes. After a loss the next attempt tries the other endpoints in turn, the one just
// lost last (client.DialAny), after a backoff delay with full jitter (Options.MinDelay,
// Options.MaxDelay), so that the clients of a node that died do not all land on the next one at
// the same moment. A server that sheds load refuses the upgrade with 503 (or 429) and Retry-After:
// the next attempt then waits what it asked, plus up to a second of jitter, instead of the backoff
// (client.HandshakeError.RetryAfter; the shortest when several endpoints asked).
//
// # Identity
//
// With Options.Token or Options.GetToken every connection sends a wsgate.v1 connect first, and
// nothing else before its reply: the gateway's way to know who a connection is. GetToken is asked
// before a dial that needs a token (none yet, expired, after a close 4501 or a connect refused
// with 110), and for refreshes, which the session makes by itself a little before the token
// expires and at once on the server's refresh push. 109 (or 110 twice) ends Run with
// ErrUnauthorized; the close codes 4001-4003 end it too, 4501 and 4503 reconnect. The channels
// the server subscribes the connection to (the token's, or later with a subscribe push) are
// delivered like the session's own, with Subscribed.Server set; the session never subscribes them
// itself: the server makes them again at connect, and the session catches up through history.
// RPC calls the backend through the server.
//
// # Concurrency
//
// Run owns the connection: it reads, and calls the callbacks of Options, one at a time, on its
// own goroutine, plus one reader goroutine per connection that it waits for. Publish may be called
// from any goroutine while Run runs, but not from a callback (it waits for a reply that Run's
// goroutine delivers). Subscribe is called before Run.
package pubsub
