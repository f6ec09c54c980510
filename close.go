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
	ClosePolicyViolation CloseCode = 1008 // a policy was violated (slow consumer, for instance)
	CloseMessageTooBig   CloseCode = 1009 // a message larger than the read limit
	CloseMandatoryExt    CloseCode = 1010 // client-only: an extension the server did not accept
	CloseInternalError   CloseCode = 1011 // a handler panicked or the server failed
	CloseServiceRestart  CloseCode = 1012 // the service is restarting
	CloseTryAgainLater   CloseCode = 1013 // temporary overload
)

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
