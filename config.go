package wsgate

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
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
	DefaultMessageTimeout    = 30 * time.Second
	DefaultParkAfter         = time.Second
	DefaultMaxReaders        = 4096

	// maxSubprotocols bounds Config.Subprotocols: a Conn holds its subprotocol's index in 16 bits.
	maxSubprotocols = 1000
)

// Config configures a Server. The zero value is a valid, secure configuration: every zero field takes
// the default its comment gives. A Config is copied by NewServer; changing it afterwards has no effect.
type Config struct {
	// ReadLimit is the largest message, in bytes, a peer may send (after decompression). A bigger
	// message closes the connection with 1009, and so does a message of more than ReadLimit/64
	// frames (at least 16: 1,024 by default), so that empty frames cannot keep one open. Default
	// 64 KiB.
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

	// PingInterval is how long a connection may stay silent before the server pings it. Any complete
	// inbound frame proves liveness; bytes of a frame that never ends do not. Default 25 s; negative
	// disables heartbeats.
	PingInterval time.Duration
	// PongTimeout is how long the peer has to answer a ping (or complete any frame). A peer that
	// completes no frame is disconnected within PingInterval+PongTimeout. Default 10 s.
	PongTimeout time.Duration
	// MessageTimeout bounds the time a peer may take to send one message, from its first byte to
	// the end of its last frame; a slower one is closed with 1008 "message timeout"
	// (ErrMessageTimeout), so that a peer trickling bytes cannot hold a connection and its read
	// buffer for ever. Time the reader spends in OnMessage does not count. Default 30 s: 64 KiB in
	// 30 s is 2.2 KB/s; raise it with ReadLimit for large messages over slow links. A single frame
	// must also complete within PingInterval+PongTimeout, or the heartbeat cuts it first: send
	// large messages in several frames. Negative: no limit.
	MessageTimeout time.Duration
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
	// ("https://app.example.com", which also pins the scheme). Default: same origin only (Origin's
	// host equals the request's Host, and its scheme is https exactly when the request came over
	// TLS, or from a TrustedProxies proxy that says so). A request without an Origin header (not a
	// browser) is always allowed. "*" allows any origin; use it knowingly.
	//
	// Same origin trusts the Host header, which the page's own name sets: a page of a name the
	// attacker makes resolve to this server (DNS rebinding, typically to 127.0.0.1 or a private
	// address) is its own origin. Set AllowedHosts, or list the origins here, for any server a
	// browser can reach.
	AllowedOrigins []string
	// Subprotocols lists the subprotocols the server speaks, in order of preference. A client that
	// offers none of them still connects, with Conn.Subprotocol() == "". At most 1000.
	Subprotocols []string
	// Compression enables permessage-deflate (RFC 7692) without context takeover, for messages of
	// 512 bytes and more. Default off: it costs CPU and memory per connection.
	Compression bool
	// ParkAfter is how long a connection may read nothing before it is parked: its reader
	// goroutine and read buffer are given back, and the connection waits on the operating
	// system's readiness notification (epoll) until the peer sends again (docs/RUNTIME.md). It
	// parks only between messages, so a busy connection reads as it would without parking.
	// Default 1 s (DefaultParkAfter), rounded up to the heartbeat's tick (a tenth of the shortest
	// of PingInterval, PongTimeout and MessageTimeout, within 5 ms and 1 s): with the defaults a
	// connection parks 1-2 s after its last frame. Heartbeats are not activity: a connection that
	// has read a pong or a ping and no message since its reader started parks again at once.
	// Negative never parks, keeping a reader goroutine per connection. Only plain TCP connections
	// on Linux park; TLS connections and other systems keep their reader goroutine.
	ParkAfter time.Duration
	// MaxReaders bounds the reader goroutines that woken connections hold at once, and so their
	// read buffers: a parked connection that becomes readable while MaxReaders readers run waits,
	// in order, for one of them to finish with its connection, and while any waits, a reader
	// parks its connection again after each message instead of after ParkAfter, so that the
	// readers go round the readable connections (docs/RUNTIME.md, "The reader pool"). A
	// connection's first reader, from its handshake until it first parks, is not counted: the
	// handshake's limits bound those (MaxHandshakeRate, MaxConnections). Default 4096
	// (DefaultMaxReaders): about 50 MB of stacks and buffers at most. Negative: no bound, a
	// reader for every woken connection. Handlers run on these readers, so a handler must not
	// wait for another connection's message: with every reader waiting, none would come.
	MaxReaders int
	// MaxHandshakeRate caps the upgrades the Server accepts per second, across all clients, with a
	// burst of as many: above it an upgrade is answered 503 Service Unavailable with Retry-After,
	// after the checks that cost nothing (size, handshake, host, origin) and before Admit and the
	// upgrade; one then refused 429 by a per-address limit gives its token back. So a reconnect
	// storm is spread over the next seconds instead of timing everyone out. Default 0: no cap.
	MaxHandshakeRate int
	// MaxConnections caps live connections, counting those whose socket is still open after their
	// close (at most CloseTimeout); further upgrades are answered 503. Default 0: no cap.
	MaxConnections int

	// What one handshake may cost, and what a connection keeps of it (see admission.go).

	// MaxHeaderBytes bounds an upgrade request: its target (path and query) plus its header
	// fields, each counted as HTTP/2 counts a header list (RFC 9113 §6.5.2): name, value and 32
	// bytes, so that many tiny fields cost what they cost to hold. A target longer than this is
	// answered 414 URI Too Long, headers over what the target leaves 431 Request Header Fields Too
	// Large. Server checks it itself, because the http.Server in front of it may allow more (Go's
	// default is 1 MB). Default 16 KiB (DefaultMaxHeaderBytes): a browser's handshake is 0.5-4 KiB
	// with its cookies (4 KiB at most each), and Node.js and most proxies stop at 8-16 KiB.
	MaxHeaderBytes int
	// KeepHeaders names the request headers a connection keeps for Conn.Header, for its whole
	// life; the others are dropped once the handshake is done. Default DefaultKeepHeaders: what a
	// browser sends that identifies its user (a browser's WebSocket cannot add headers of its own)
	// and what proxies add. "*" keeps every header but the handshake's own, up to MaxHeaderBytes
	// per connection; an empty list that is not nil keeps none.
	KeepHeaders []string
	// AllowedHosts lists the hosts the server answers to, as patterns matched against the
	// request's Host (path.Match syntax; "example.com" and "*.example.com" match on any port,
	// "localhost:8080" on that port only). A request for another host is refused 403. Default:
	// any host, which leaves the same-origin default open to DNS rebinding (see AllowedOrigins).
	AllowedHosts []string
	// TrustedProxies lists the reverse proxies in front of the server, as addresses or CIDR
	// prefixes ("10.0.0.0/8", "::1"). A request from one of them is believed about the client:
	// its scheme from X-Forwarded-Proto (the first entry, as the first proxy set it), its address
	// from X-Forwarded-For (the last entry that is not a trusted proxy), for the same-origin check
	// and MaxConnectionsPerIP. Default none: those headers are never believed, since any client
	// can send them.
	TrustedProxies []string
	// MaxConnectionsPerIP caps the live connections of one client address (an IPv4 address, an
	// IPv6 /64): further upgrades from it are answered 429 Too Many Requests, with Retry-After.
	// The address is the peer's, or behind a TrustedProxies proxy the client's it names. Default
	// 0, no cap: behind a proxy that is not in TrustedProxies, or a carrier's NAT, many clients
	// share one address. Set it when clients reach the server directly, or through a trusted proxy.
	MaxConnectionsPerIP int
	// Admit, when set, decides on each upgrade request that passed the checks above (size,
	// handshake, host, origin, the connection caps), before the upgrade: the place for identity
	// (a token in a header, a cookie, a query parameter) and for rate limits. What it returns
	// becomes Conn.Auth for the connection's life. An error refuses the upgrade: a *RejectError
	// with its status, message and Retry-After; any other error with 403 "forbidden" (its text is
	// logged, not sent). It runs on the request's goroutine while the request holds its
	// connection slot, so a slow Admit (a call to a backend) is bounded by the caps; it must honour
	// r.Context(). Default: admit everyone, Auth nil.
	Admit func(r *http.Request) (auth any, err error)

	trusted []netip.Prefix // TrustedProxies, parsed

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
	neg("MaxHandshakeRate", r.MaxHandshakeRate)
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
	if len(r.Subprotocols) > maxSubprotocols {
		errs = append(errs, fmt.Errorf("wsgate: %d Subprotocols, more than %d", len(r.Subprotocols), maxSubprotocols))
	}
	for _, p := range r.Subprotocols {
		if p == "" || strings.ContainsAny(p, " ,\t\"") {
			errs = append(errs, fmt.Errorf("wsgate: bad Subprotocols entry %q", p))
		}
	}
	errs = append(errs, r.admissionDefaults()...)
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
	defd(&r.MessageTimeout, DefaultMessageTimeout)
	defd(&r.ParkAfter, DefaultParkAfter)
	def(&r.MaxReaders, DefaultMaxReaders)
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	return r, nil
}

// originHostPattern turns an AllowedOrigins entry into the pattern matched against the origin:
// entries with a scheme match the whole "scheme://host", others the host alone.
func originHostPattern(p string) string { return strings.ToLower(p) }

// originAllowed implements the same-origin default and the AllowedOrigins patterns.
func (c *Config) originAllowed(origin, host, scheme string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	oh := strings.ToLower(u.Host)
	if len(c.AllowedOrigins) == 0 {
		return oh == strings.ToLower(host) && originScheme(u.Scheme) == scheme
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
