package wsgate

import "unicode/utf8"

// CloseCode is a WebSocket close status code (RFC 6455 §7.4).
type CloseCode int

// Close codes wsgate sends or reports. Codes 1005, 1006 and 1015 are only ever reported, never sent.
const (
	CloseNormal          CloseCode = 1000 // the purpose of the connection is fulfilled
	CloseGoingAway       CloseCode = 1001 // server shutting down, or the browser leaving the page
	CloseProtocolError   CloseCode = 1002 // malformed frame or broken protocol rule
	CloseUnsupportedData CloseCode = 1003 // a message type the endpoint cannot accept
	CloseNoStatus        CloseCode = 1005 // reported: the peer's close frame carried no code
	CloseAbnormal        CloseCode = 1006 // reported: the connection ended without a close frame
	CloseInvalidPayload  CloseCode = 1007 // invalid UTF-8 in a text message
	ClosePolicyViolation CloseCode = 1008 // a policy was violated: terminal, the same would fail again
	CloseMessageTooBig   CloseCode = 1009 // a message larger than the read limit
	CloseMandatoryExt    CloseCode = 1010 // client-only: an extension the server did not accept
	CloseInternalError   CloseCode = 1011 // a handler panicked or the server failed
	CloseServiceRestart  CloseCode = 1012 // the service is restarting
	CloseTryAgainLater   CloseCode = 1013 // temporary overload; "slow consumer": the peer fell behind
	CloseBadGateway      CloseCode = 1014 // a gateway or proxy got a bad answer upstream
)

// The slow-consumer close. A connection whose send queue overflows under PolicyClose is closed with
// 1013 (Try Again Later) and the reason "slow consumer": the peer fell behind a burst, which says
// nothing about the next connection, so clients reconnect (with backoff) and recover what they
// missed, as Centrifugo's "slow" disconnect does. 1008 would tell every client to give up for good.
const slowConsumerReason = "slow consumer"

// maxCloseReason is the longest reason that fits a control frame: 125 bytes minus the 2-byte code.
const maxCloseReason = 123

// Sendable reports whether an endpoint may put c in a close frame (RFC 6455 §7.4.1, §7.4.2 and
// the IANA registry): 1000-1003, 1007-1014, and the registered/private ranges 3000-4999. Server,
// client and CLI share this one rule.
func (c CloseCode) Sendable() bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// Reconnectable reports whether a client should reconnect (with backoff) after a close with code c:
// the server is going away or restarting (1001, 1012), overloaded or the client fell behind (1013,
// including the slow-consumer close), it failed (1011), a gateway failed (1014), the connection
// broke without a code (1005, 1006), or the application asks it to come back (4500-4999). Every
// other code is terminal: a normal close (1000) means the server is done with this client, and
// protocol, data, policy and size errors (1002, 1003, 1007, 1008, 1009, 1010), TLS failures (1015),
// the registered range 3000-3999, the application range 4000-4499 and unknown codes would only
// repeat. The JS client's shouldReconnect and the CLI's exit statuses follow this one table.
func (c CloseCode) Reconnectable() bool {
	switch {
	case c == CloseGoingAway, c == CloseNoStatus, c == CloseAbnormal:
		return true
	case c >= CloseInternalError && c <= CloseBadGateway:
		return true
	case c >= 4500 && c <= 4999:
		return true
	}
	return false
}

// TruncateCloseReason cuts s to at most 123 bytes (what fits a close frame beside its code) without splitting a UTF-8 sequence, and
// replaces invalid UTF-8 so that the close frame itself is always valid.
func TruncateCloseReason(s string) string {
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // replaces invalid bytes with U+FFFD
	}
	if len(s) <= maxCloseReason {
		return s
	}
	s = s[:maxCloseReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// closePayload encodes a close frame body: the code in network byte order, then the reason.
func closePayload(code CloseCode, reason string) []byte {
	p := make([]byte, 2, 2+len(reason))
	p[0], p[1] = byte(code>>8), byte(code)
	return append(p, reason...)
}
