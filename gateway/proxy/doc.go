// Package proxy makes the calls wsgate sends to the application's backend over HTTP, for
// applications that know their users by a session cookie rather than by a JWT: who a
// connection is (connect, refresh), whether it may subscribe or publish, and the answers to
// its rpc requests. The gateway wires its methods into the hub's hooks (hub.Options: Connect,
// Refresh, Authorize for subscribe, Publish, RPC).
//
// The formats follow Centrifugo's proxy, so that a backend written for one reads the other.
// docs/PROXY.md says the same for backend authors who do not read Go.
//
// # Requests
//
// Every call is an HTTP POST of a JSON object to its configured URL (Config.Connect.URL, ...),
// with Content-Type: application/json:
//
//	{
//	  "client":    "c7",                  // the connection's name, as presence shows it
//	  "transport": "wsgate.v1",           // or "raw": a connection without the subprotocol
//	  "remote":    "203.0.113.9:51234",   // the client's address, as the server saw it
//	  "user":      "alice",               // the connection's user, when known (not at connect)
//	  "headers":   {"Cookie": "sid=...", "Origin": "https://app.example"},
//	  "token":     "...",                 // connect, refresh: the client's token, if it sent one;
//	                                      // subscribe: its channel token, if any
//	  "channel":   "chat:lobby",          // subscribe, publish
//	  "data":      {"text": "hi"},        // publish: the publication; rpc: the request's data
//	  "method":    "getProfile"           // rpc
//	}
//
// "headers" holds the handshake's headers that Config.ForwardHeaders names (default Cookie,
// Authorization, Origin, User-Agent, X-Forwarded-For, X-Real-Ip), several values of one joined
// with ", " ("; " for Cookie). The same headers are also set on the HTTP request itself, so that
// the backend's usual session middleware reads the cookie; Config.Headers (a secret by which the
// backend knows wsgate) are set after them and win. Hop-by-hop headers are never forwarded.
// X-Forwarded-For is the client's own, as it (or the proxies before wsgate) sent it: "remote" is
// the address wsgate saw.
//
// # Answers
//
// The backend answers 200 with one of:
//
//	{"result": {...}}                                   // done; the call's result below
//	{"error": {"code": 104, "message": "not yours"}}    // refused: the client's error reply
//	{"disconnect": {"code": 4003, "reason": "banned"}}  // refused, and the connection is closed
//
// Results, per call (unknown fields are ignored):
//
//	connect, refresh: {"user": "alice", "info": {"name": "Alice"}, "expire_at": 1767225600,
//	                   "channels": ["#alice", "news"]}
//	                  "expires_in" (seconds from now) may stand for "expire_at" (unix seconds);
//	                  neither, or 0, never expires. A refresh keeps the user (an answer for
//	                  another is a bad answer) and may say "expired": true, which refuses with
//	                  110 (token expired): the connection lapses at its current expiry.
//	subscribe:        {}
//	publish:          {} publishes the data unchanged; {"data": ...} publishes that instead
//	rpc:              {"data": ...}, the rpc reply's result (null without "data")
//
// A connect result with no user ({}) connects the client anonymously.
//
// # What the client is told
//
//   - error: a wsgate.v1 code (100-112, 200-204) is the reply, with the backend's message (cut
//     to 256 bytes). Another code is a refusal, as below.
//   - refusal (HTTP 401 or 403, error code 109 on connect, or a code that is not wsgate.v1's):
//     connect answers 109 (unauthorized) and closes with 4001 (protocol.CloseUnauthorized);
//     refresh answers 109, and the connection lapses at its expiry; subscribe, publish and rpc
//     answer 104 (forbidden).
//   - disconnect: the code must be 4000-4999 (else the answer is a bad one); the reply is 109
//     on connect, 104 otherwise, with the reason (cut to 123 bytes, what a close frame holds),
//     then the connection is closed with that code.
//   - the backend unreachable, timing out, or answering 5xx: 201 (unavailable), after the
//     retries. A call that is not configured: 112 (not available).
//   - a bad answer (not the JSON above, a result that fails the checks below, a body longer than
//     Config.MaxResponseBytes, any other status, a redirect): 200 (internal).
//
// The client's reply never holds the backend's URL or anything of the call but the backend's
// own message; the *Error returned says why, for the server's log, without token, cookie or URL.
//
// # What is checked
//
// An answer is input like any other. Its body is read up to Config.MaxResponseBytes (the read
// stops there: a backend streaming without end costs that much); a connect or refresh result's
// user is at most hub.MaxUserLen bytes, its info valid JSON of at most hub.MaxInfoLen bytes, its
// channels valid names (protocol.ValidChannel), at most Config.MaxChannels of them (duplicates
// dropped); the data of a publish or rpc result is valid JSON of at most Config.MaxDataSize
// bytes; the expiry within year 9999. Info and data are compacted (their insignificant spaces
// dropped: presence pages and subscribers carry them) before their bounds apply.
//
// # Retries
//
// Each attempt is bounded by its Endpoint's Timeout; the call as a whole by the caller's ctx.
// Connect, refresh, subscribe and rpc are retried (Endpoint.Retries, default 2) after a network
// error, an attempt that timed out, or a 502, 503 or 504, after a backoff with jitter
// (Config.Backoff, doubling up to Config.MaxBackoff), and only while ctx leaves time for the
// wait. They are safe to repeat: each only asks a question, but rpc, whose methods the
// application defines; give it negative Retries when they are not idempotent.
//
// A publish is retried only when the backend cannot have seen it: when no connection to it
// could be made. After a request was sent, a timeout, a reset or a 502-504 from a proxy in front
// may each come after the backend acted on it (stored a message, counted it), and the client's
// publish would be applied twice; the client gets 201 and decides. (Go's transport also resends
// a request on a kept-alive connection that the backend had closed before any byte of it was
// written, which is as safe.)
//
// # Concurrency and cost
//
// A Proxy is safe for concurrent use; it starts no goroutine of its own. Its default client opens
// at most DefaultMaxConnsPerHost connections to the backend (calls beyond wait for one, within
// their ctx) and keeps up to DefaultMaxIdleConnsPerHost of them idle; CloseIdleConnections
// closes those (on shutdown). Cookies the backend sets are never kept: each call carries its own
// client's. A call costs the node one request and at most MaxResponseBytes of answer, measured
// decompressed.
package proxy
