package wsgate

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"strings"
	"time"
)

// SlowConsumerPolicy says what Send does when a connection's send queue is full.
type SlowConsumerPolicy int

const (
	// PolicyClose discards what is queued and closes the connection with 1013 (Try Again Later)
	// "slow consumer"; Send returns ErrQueueFull. This is the default: one slow reader never costs
	// memory or time to anyone else, and the client learns why it was dropped and that it may
	// reconnect (CloseCode.Reconnectable) and recover what it missed.
	PolicyClose SlowConsumerPolicy = iota
	// PolicyDropNewest keeps the queue and refuses the new message: Send returns ErrQueueFull.
	PolicyDropNewest
	// PolicyDropOldest evicts the oldest queued messages (never one already being written) until the
	// new one fits; Send returns nil. Evictions are counted in ConnStats.Dropped and ServerStats.Dropped.
	PolicyDropOldest
)

func (p SlowConsumerPolicy) String() string {
	switch p {
	case PolicyClose:
		return "close"
	case PolicyDropNewest:
		return "drop-newest"
	case PolicyDropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("SlowConsumerPolicy(%d)", int(p))
}

// MarshalText implements encoding.TextMarshaler, so the policy works with flag.TextVar and config files.
func (p SlowConsumerPolicy) MarshalText() ([]byte, error) {
	if p < PolicyClose || p > PolicyDropOldest {
		return nil, fmt.Errorf("wsgate: unknown slow-consumer policy %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseSlowConsumerPolicy.
func (p *SlowConsumerPolicy) UnmarshalText(b []byte) error {
	v, err := ParseSlowConsumerPolicy(string(b))
	if err == nil {
		*p = v
	}
	return err
}

// ParseSlowConsumerPolicy parses "close", "drop-newest" or "drop-oldest".
func ParseSlowConsumerPolicy(s string) (SlowConsumerPolicy, error) {
	for _, p := range []SlowConsumerPolicy{PolicyClose, PolicyDropNewest, PolicyDropOldest} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("wsgate: unknown slow-consumer policy %q (want close, drop-newest or drop-oldest)", s)
}

// Defaults applied by Config to zero fields.
const (
	DefaultReadLimit         = 64 << 10
	DefaultSendQueueMessages = 1024
	DefaultSendQueueBytes    = 1 << 20
	DefaultPingInterval      = 25 * time.Second
	DefaultPongTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultHandshakeTimeout  = 5 * time.Second
	DefaultCloseTimeout      = 5 * time.Second
)

// Config configures a Server. The zero value is a valid, secure configuration: every zero field takes
// the default its comment gives. A Config is copied by NewServer; changing it afterwards has no effect.
type Config struct {
	// ReadLimit is the largest message, in bytes, a peer may send (after decompression). A bigger
	// message closes the connection with 1009. Default 64 KiB.
	ReadLimit int

	// SendQueueMessages bounds the messages queued for one connection and not yet written.
	// Default 1024: a burst of small messages as large as a recovery page of the hub (up to 1000
	// publications) fits.
	SendQueueMessages int
	// SendQueueBytes bounds the payload bytes queued for one connection, including the batch being
	// written. Default 1 MiB. A single message bigger than this is refused with ErrMessageTooLarge.
	//
	// What a full queue costs per connection: each message sits, framed, in a pooled buffer of the
	// next power of two (at least 64 bytes), so at most about 2×SendQueueBytes, plus 40 bytes a
	// message for the queue's slots (twice: the queue and its spare); a PreparedMessage is shared,
	// not copied. With the defaults: at most about 2.1 MiB (1024 messages of 64 bytes: 144 KiB).
	SendQueueBytes int
	// SlowConsumer is applied when a Send finds the queue full. Default PolicyClose (1013).
	SlowConsumer SlowConsumerPolicy

	// PingInterval is how long a connection may stay silent before the server pings it. Any inbound
	// data proves liveness. Default 25 s; negative disables heartbeats.
	PingInterval time.Duration
	// PongTimeout is how long the peer has to answer a ping (or send anything at all). A peer that
	// stays silent is disconnected within PingInterval+PongTimeout. Default 10 s.
	PongTimeout time.Duration
	// WriteTimeout bounds how long a write may wait for the peer to read: a batch that finds the
	// socket full must be written within WriteTimeout from then, or the connection is closed
	// (1006, ErrWriteTimeout). Default 10 s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds writing the 101 response. Default 5 s.
	HandshakeTimeout time.Duration
	// CloseTimeout bounds a close from its start (Conn.Close, the slow-consumer policy, Shutdown):
	// what is left to write, our close frame, and the peer's answer. A connection still there then
	// is dropped. Default 5 s.
	CloseTimeout time.Duration

	// AllowedOrigins lists the browser origins allowed to connect, as patterns matched against the
	// Origin header's host (path.Match syntax: "example.com", "*.example.com") or full origins
	// ("https://app.example.com"). Default: same origin only (Origin's host equals the request's
	// Host). A request without an Origin header (not a browser) is always allowed. "*" allows any
	// origin; use it knowingly.
	AllowedOrigins []string
	// Subprotocols lists the subprotocols the server speaks, in order of preference. A client that
	// offers none of them still connects, with Conn.Subprotocol() == "".
	Subprotocols []string
	// Compression enables permessage-deflate (RFC 7692) without context takeover, for messages of
	// 512 bytes and more. Default off: it costs CPU and memory per connection.
	Compression bool
	// MaxConnections caps live connections, counting those whose socket is still open after their
	// close (at most CloseTimeout); further upgrades are answered 503. Default 0: no cap.
	MaxConnections int

	// Logger receives connection-level events (never payloads). Default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns a copy of c (nil allowed) with defaults applied, or an error for values that
// cannot work.
func (c *Config) withDefaults() (Config, error) {
	var r Config
	if c != nil {
		r = *c
		r.AllowedOrigins = append([]string(nil), c.AllowedOrigins...)
		r.Subprotocols = append([]string(nil), c.Subprotocols...)
	}
	var errs []error
	neg := func(name string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("wsgate: %s must not be negative, got %d", name, v))
		}
	}
	neg("ReadLimit", r.ReadLimit)
	neg("SendQueueMessages", r.SendQueueMessages)
	neg("SendQueueBytes", r.SendQueueBytes)
	neg("MaxConnections", r.MaxConnections)
	for name, d := range map[string]time.Duration{"PongTimeout": r.PongTimeout, "WriteTimeout": r.WriteTimeout,
		"HandshakeTimeout": r.HandshakeTimeout, "CloseTimeout": r.CloseTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("wsgate: %s must not be negative, got %v", name, d))
		}
	}
	if r.SlowConsumer < PolicyClose || r.SlowConsumer > PolicyDropOldest {
		errs = append(errs, fmt.Errorf("wsgate: unknown SlowConsumer policy %d", int(r.SlowConsumer)))
	}
	for _, o := range r.AllowedOrigins {
		if _, err := path.Match(originHostPattern(o), ""); err != nil || o == "" {
			errs = append(errs, fmt.Errorf("wsgate: bad AllowedOrigins pattern %q", o))
		}
	}
	for _, p := range r.Subprotocols {
		if p == "" || strings.ContainsAny(p, " ,\t\"") {
			errs = append(errs, fmt.Errorf("wsgate: bad Subprotocols entry %q", p))
		}
	}
	if len(errs) > 0 {
		return r, errors.Join(errs...)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&r.ReadLimit, DefaultReadLimit)
	def(&r.SendQueueMessages, DefaultSendQueueMessages)
	def(&r.SendQueueBytes, DefaultSendQueueBytes)
	defd(&r.PingInterval, DefaultPingInterval)
	defd(&r.PongTimeout, DefaultPongTimeout)
	defd(&r.WriteTimeout, DefaultWriteTimeout)
	defd(&r.HandshakeTimeout, DefaultHandshakeTimeout)
	defd(&r.CloseTimeout, DefaultCloseTimeout)
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	return r, nil
}

// originHostPattern turns an AllowedOrigins entry into the pattern matched against the origin:
// entries with a scheme match the whole "scheme://host", others the host alone.
func originHostPattern(p string) string { return strings.ToLower(p) }

// originAllowed implements the same-origin default and the AllowedOrigins patterns.
func (c *Config) originAllowed(origin, host string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	oh := strings.ToLower(u.Host)
	if len(c.AllowedOrigins) == 0 {
		return oh == strings.ToLower(host)
	}
	full := strings.ToLower(u.Scheme) + "://" + oh
	for _, p := range c.AllowedOrigins {
		if p == "*" {
			return true
		}
		pat := originHostPattern(p)
		target := oh
		if strings.Contains(pat, "://") {
			target = full
		}
		if ok, _ := path.Match(pat, target); ok {
			return true
		}
	}
	return false
}
