package client

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate"
)

// Sentinel errors of the client. They are stable: match them with errors.Is. Those that mean what
// the server's do are the server's (wsgate.ErrClosed, ...), so one errors.Is serves both sides.
var (
	// ErrClosed is returned by Write, Ping and Close on a connection that is closing or closed.
	ErrClosed = wsgate.ErrClosed
	// ErrBadURL is wrapped by Dial's error for a URL that is not ws:// or wss://.
	ErrBadURL = errors.New("client: URL must be ws:// or wss://")
	// ErrBadOptions is wrapped by Dial's error for Options that cannot work (a header Dial sets
	// itself, a subprotocol that is not a token, a negative limit).
	ErrBadOptions = errors.New("client: invalid options")
	// ErrBadHandshake is wrapped by every error of a server's upgrade response that is not a valid
	// WebSocket handshake: a *HandshakeError for a status other than 101, or a 101 with wrong
	// headers (Sec-WebSocket-Accept, a subprotocol that was not offered).
	ErrBadHandshake = errors.New("client: bad handshake")
	// ErrCloseTimeout is returned by Close, and wrapped by the final CloseError, when the server did
	// not answer the close frame within Options.CloseTimeout.
	ErrCloseTimeout = wsgate.ErrCloseTimeout
	// ErrInvalidCloseCode is returned by Close for a code an endpoint may not send (RFC 6455 §7.4).
	ErrInvalidCloseCode = wsgate.ErrInvalidCloseCode
	// ErrInvalidMessageType is returned by Write for a type other than wsgate.Text or wsgate.Binary.
	ErrInvalidMessageType = wsgate.ErrInvalidMessageType
	// ErrInvalidUTF8 is returned by Write for a text message that is not valid UTF-8 (RFC 6455
	// §5.6). The connection stays open.
	ErrInvalidUTF8 = wsgate.ErrInvalidUTF8
)

// HandshakeError is Dial's error when the server answered the upgrade request with a status other
// than 101 Switching Protocols: a 403 for an origin it does not allow, a 503 while it shuts down.
type HandshakeError struct {
	StatusCode int    // the HTTP status code, e.g. 403
	Status     string // the status line's text, e.g. "403 Forbidden"
	Body       string // the start of the response body (up to 1 KiB), spaces trimmed
	// RetryAfter is the wait the answer's Retry-After header asks for (RFC 9110 §10.2.3: seconds,
	// or an HTTP date), at most MaxRetryAfter; 0 when it has none, or a malformed one. A wsgate
	// that sheds load answers 503 with it, a per-address limit 429 (docs/TUNING.md).
	RetryAfter time.Duration
}

// MaxRetryAfter is the longest wait a HandshakeError's RetryAfter holds: a longer Retry-After is
// cut to it, as in the JS client.
const MaxRetryAfter = time.Hour

// ParseRetryAfter reads a Retry-After header's value at now (RFC 9110 §10.2.3): delay-seconds
// or an HTTP date, a date past giving 0, and any wait cut to MaxRetryAfter. ok is false when v is
// neither (missing, negative, fractional, text). The load generator (wsgate bench) reads its
// refusals with it too.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if strings.Trim(v, "0123456789") == "" {
		if v = strings.TrimLeft(v, "0"); len(v) > 5 { // beyond a day: the cap applies, and no overflow
			return MaxRetryAfter, true
		}
		n, _ := strconv.Atoi(v) // "" (all zeros) is 0
		return min(time.Duration(n)*time.Second, MaxRetryAfter), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter), true
	}
	return 0, false
}

func (e *HandshakeError) Error() string {
	s := "client: handshake failed: " + e.Status
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Unwrap makes a HandshakeError match ErrBadHandshake.
func (e *HandshakeError) Unwrap() error { return ErrBadHandshake }

// bodyText turns the start of a response body into one readable line.
func bodyText(b []byte) string {
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
}
