// Package client is wsgate's WebSocket client (RFC 6455): Dial a ws:// or wss:// URL, then Read,
// Write, Ping and Close. It speaks the same close codes, message types and CloseError as the
// server runtime in package wsgate, so both sides of a test or a tool report a close the same way.
//
//	c, _, err := client.Dial(ctx, "ws://127.0.0.1:8080/ws", nil)
//	if err != nil { ... }                   // a *HandshakeError carries the HTTP status and body
//	defer c.CloseNow()
//	err = c.Write(ctx, wsgate.Text, []byte("Hello!"))
//	typ, data, err := c.Read(ctx)          // "Hello! done"; data is the caller's to keep
//	err = c.Close(wsgate.CloseNormal, "") // close handshake: waits for the server's close frame
//
// DialAny tries several endpoints of one service in turn (the nodes of a wsgate cluster) and
// returns the first connection; package client/pubsub builds a wsgate.v1 session on it that moves
// to another node when its own is gone and recovers its subscriptions there.
//
// # Concurrency
//
// Every method of Conn is safe for concurrent use. Each Conn runs one goroutine, its reader, from
// Dial until the connection has ended; Close and CloseNow wait for it, so a closed Conn leaves
// nothing behind.
//
//   - Read hands over the messages in arrival order. The reader holds at most one message that
//     Read has not taken: until it is taken, nothing more is read from the socket, pings and the
//     server's close frame included. So keep a goroutine reading for as long as the connection is
//     open (the usual shape is one reading goroutine and any number of writers). Several
//     goroutines may read at once; each message then goes to one of them.
//   - Write and Ping take turns: one frame is written at a time, whole, in the order the writers
//     got their turn. A context that ends during a write leaves a partial frame behind, so the
//     connection is dropped (as coder/websocket does); a context that ends while waiting for the
//     turn, or during a Read, costs nothing.
//   - Pings from the server are answered by the reader, with their payload (RFC 6455 §5.5.3).
//   - Close sends a close frame after the write in progress and waits, up to
//     Options.CloseTimeout, for the server's; messages arriving meanwhile still go to Read.
//     CloseNow drops the TCP connection at once. Both are idempotent.
//
// Once the connection has ended, Read returns the remaining message (if any) and then, for
// ever, a *wsgate.CloseError saying how it ended: the code and reason of the close frame, Remote
// set when the server started the close, Code 1006 (wsgate.CloseAbnormal) when the connection was
// lost without a close frame. Write, Ping and Close then return ErrClosed.
//
// No type of the transport library (github.com/lxzan/gws, patched in internal/gws) appears in
// this API.
package client
