package loadgen

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"
)

// Mode names a kind of load.
type Mode string

// The modes; see the package documentation.
const (
	ModeEcho    Mode = "echo"
	ModeIdle    Mode = "idle"
	ModeConnect Mode = "connect"
	ModeFanout  Mode = "fanout"
)

// Modes lists every mode, in the order the help text gives them.
var Modes = []Mode{ModeEcho, ModeIdle, ModeConnect, ModeFanout}

// Protocol is what a fanout run speaks to subscribe and publish.
type Protocol string

// Fanout protocols.
const (
	// ProtoWsgate is the wsgate.v1 subprotocol (docs/PROTOCOL.md).
	ProtoWsgate Protocol = "wsgate"
	// ProtoCentrifugo is Centrifugo's JSON client protocol over WebSocket: a connect command, then
	// subscribe and publish commands; anonymous connections must be allowed to subscribe and publish.
	ProtoCentrifugo Protocol = "centrifugo"
)

// Limits that keep every run bounded.
const (
	MaxConns       = 50000
	MaxDuration    = 10 * time.Minute
	MaxSize        = 16 << 20
	MaxWindow      = 1024
	MaxRate        = 10_000_000
	MaxPublishRate = 100_000
	MaxSourceIPs   = 254
	MaxDialers     = 1024
	MaxDrain       = 2 * time.Minute
	MaxNodes       = 16
)

// Config is one run. The zero value of every field but URL and Mode takes the default its comment
// gives; WithDefaults applies them and Check refuses what cannot run.
type Config struct {
	Mode Mode
	// URL of the server: ws:// or wss://, on a loopback address unless AllowRemote. With Nodes,
	// WithDefaults sets it to the publisher's node.
	URL string
	// Nodes, for fanout against a cluster: the URL of each node (at most MaxNodes), one service
	// behind them all. With two or more, the publisher connects to the node numbered PublishNode
	// and the subscribers are dealt round robin over the others, so that every delivery crosses
	// from one node to another; with one, it is URL.
	Nodes []string
	// PublishNode numbers the publisher's node in Nodes, from 1. Default 1.
	PublishNode int
	// AllowRemote permits a target that is not a loopback address. Off by default: a load test
	// should not leave the machine by accident.
	AllowRemote bool

	// Conns: echo and idle connections, or connect workers. Default 100 (echo, idle), 10 (connect).
	Conns int
	// Duration: how long echo, connect and fanout send; how long idle holds its connections once
	// open. Default 10s.
	Duration time.Duration
	// Size of an echo message, or of the padding in a fanout publication's data, in bytes.
	// Default 32 (echo), 0 (fanout).
	Size int
	// Window: echo messages in flight per connection; 1 (the default) is a closed loop.
	Window int
	// Rate: echo messages per second over all connections (0, the default: as fast as the echoes
	// come back); fanout publications per second (default 10).
	Rate float64
	// Text sends echo messages as text frames instead of binary.
	Text bool
	// Suffix is what the server appends to each echo: "wsgate serve" answers "<msg> done", so " done".
	Suffix string

	// Subscribers for fanout (default 100), Channel they subscribe to (default "bench"), and the
	// Protocol spoken (default ProtoWsgate). Idle speaks no protocol but, with ProtoCentrifugo,
	// Centrifugo's: its connect command on each connection, its pings answered.
	Subscribers int
	Channel     string
	Protocol    Protocol
	// Drain bounds how long, after the last publication or echo, the run waits for what is still in
	// flight. Default 10s.
	Drain time.Duration

	// Reset, for idle, ends the connections with a TCP reset (SO_LINGER 0) instead of a FIN, so
	// that none is left in TIME_WAIT: back-to-back runs then read the kernel's memory cleanly.
	Reset bool

	// PID of the server process, for idle: its VmRSS is read before and after. 0: not measured.
	PID int
	// Hold, for idle, is closed (or sent to) to end the hold early; nil: hold for Duration.
	Hold <-chan struct{}
	// Ready, for idle, is called once every connection has been dialled, with the number open.
	Ready func(open int)

	// Storm, for connect: instead of workers in a loop, Conns clients dial at once (at StormAt),
	// each until it is in, honouring Retry-After (storm.go); RampTimeout bounds the storm,
	// Duration the hold once every client is in.
	Storm bool
	// StormAt is when a storm's clients are released, so that the storms of several processes
	// fire together; zero: as soon as they are ready.
	StormAt time.Time

	// SourceIPs spreads connections over 127.0.0.1..127.0.0.N as local addresses, for more than
	// one address's worth of ports; 0 (the default) picks what the connection count needs.
	SourceIPs int
	// Dialers: connections dialled at once. Default 64.
	Dialers int
	// ConnectTimeout bounds each dial with its handshake. Default 10s.
	ConnectTimeout time.Duration
	// RootCAs, when set, are the only certificate authorities a wss:// server is checked against
	// (a test server's self-signed certificate); nil: the system's.
	RootCAs *x509.CertPool
	// RampTimeout bounds opening all the connections of idle and fanout. Default 2m.
	RampTimeout time.Duration

	// Interval between time line samples and progress reports. Default: Duration/60, within
	// [100ms, 1s].
	Interval time.Duration
	// Progress, if set, is called with a snapshot every Interval while the run goes on.
	Progress func(Snapshot)
}

// WithDefaults returns c with the default of every zero field applied.
func (c Config) WithDefaults() Config {
	if c.Conns == 0 {
		c.Conns = 100
		if c.Mode == ModeConnect {
			c.Conns = 10
		}
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Size == 0 && c.Mode == ModeEcho {
		c.Size = 32
	}
	if c.Window == 0 {
		c.Window = 1
	}
	if c.Rate == 0 && c.Mode == ModeFanout {
		c.Rate = 10
	}
	if c.Subscribers == 0 {
		c.Subscribers = 100
	}
	if c.Channel == "" {
		c.Channel = "bench"
	}
	if c.Protocol == "" {
		c.Protocol = ProtoWsgate
	}
	if c.Drain == 0 {
		c.Drain = 10 * time.Second
	}
	if c.Dialers == 0 {
		c.Dialers = 64
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.RampTimeout == 0 {
		c.RampTimeout = 2 * time.Minute
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval(c.Duration)
	}
	if c.PublishNode == 0 {
		c.PublishNode = 1
	}
	if len(c.Nodes) > 0 && c.PublishNode <= len(c.Nodes) {
		c.URL = c.Nodes[c.PublishNode-1]
	}
	return c
}

// subscriberNodes are the URLs the subscribers are dealt over, round robin: every node but the
// publisher's when there are two or more, else the one URL.
func (c *Config) subscriberNodes() []string {
	if len(c.Nodes) < 2 {
		return []string{c.URL}
	}
	return slices.Delete(slices.Clone(c.Nodes), c.PublishNode-1, c.PublishNode)
}

// DefaultInterval is the sampling interval for a run of duration d: d/60 within [100ms, 1s].
func DefaultInterval(d time.Duration) time.Duration {
	return min(max(d/60, 100*time.Millisecond), time.Second)
}

// prepare gives c the mode and the defaults, and checks it: the start of every mode.
func prepare(c Config, mode Mode) (Config, error) {
	c.Mode = mode
	c = c.WithDefaults()
	return c, c.Check()
}

// Check reports the first setting that cannot run, naming its flag as "wsgate bench" spells it.
func (c *Config) Check() error {
	if err := c.checkNodes(); err != nil {
		return err
	}
	if err := checkURL(c.URL, c.AllowRemote); err != nil {
		return err
	}
	switch c.Mode {
	case ModeEcho, ModeIdle, ModeConnect, ModeFanout:
	default:
		return fmt.Errorf("unknown mode %q (want echo, idle, connect or fanout)", c.Mode)
	}
	switch {
	case c.Conns < 1 || c.Conns > MaxConns:
		return fmt.Errorf("-c must be within 1..%d, got %d", MaxConns, c.Conns)
	case c.Subscribers < 1 || c.Subscribers > MaxConns:
		return fmt.Errorf("-subscribers must be within 1..%d, got %d", MaxConns, c.Subscribers)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("-duration must be within (0, %v], got %v", MaxDuration, c.Duration)
	case c.Size < 0 || c.Size > MaxSize || (c.Mode == ModeEcho && c.Size < 1):
		return fmt.Errorf("-size must be within 1..%d bytes, got %d", MaxSize, c.Size)
	case c.Window < 1 || c.Window > MaxWindow:
		return fmt.Errorf("-window must be within 1..%d, got %d", MaxWindow, c.Window)
	case c.Rate < 0 || c.Rate > MaxRate || (c.Mode == ModeFanout && (c.Rate <= 0 || c.Rate > MaxPublishRate)):
		limit := float64(MaxRate)
		if c.Mode == ModeFanout {
			limit = MaxPublishRate
		}
		return fmt.Errorf("-rate must be within (0, %.0f] per second, got %g", limit, c.Rate)
	case c.Drain < 0 || c.Drain > MaxDrain:
		return fmt.Errorf("-drain must be within 0..%v, got %v", MaxDrain, c.Drain)
	case c.SourceIPs < 0 || c.SourceIPs > MaxSourceIPs:
		return fmt.Errorf("-source-ips must be within 0..%d, got %d", MaxSourceIPs, c.SourceIPs)
	case c.Dialers < 1 || c.Dialers > MaxDialers:
		return fmt.Errorf("-dialers must be within 1..%d, got %d", MaxDialers, c.Dialers)
	case c.ConnectTimeout <= 0 || c.ConnectTimeout > time.Minute:
		return fmt.Errorf("-connect-timeout must be within (0, 1m], got %v", c.ConnectTimeout)
	case c.RampTimeout <= 0 || c.RampTimeout > MaxDuration:
		return fmt.Errorf("-ramp-timeout must be within (0, %v], got %v", MaxDuration, c.RampTimeout)
	case c.Interval <= 0:
		return errors.New("the sampling interval must be positive")
	case c.PID < 0:
		return fmt.Errorf("-pid must be a process id, got %d", c.PID)
	case c.Protocol != ProtoWsgate && c.Protocol != ProtoCentrifugo:
		return fmt.Errorf("-protocol must be wsgate or centrifugo, got %q", c.Protocol)
	case c.Channel == "" || len(c.Channel) > 255:
		return errors.New("-channel must be 1..255 bytes")
	}
	if c.SourceIPs > 1 && !allIPv4Loopback(c.urls()) {
		return errors.New("-source-ips above 1 needs an IPv4 loopback target such as 127.0.0.1")
	}
	return nil
}

// checkNodes refuses a list of nodes outside fanout, too long, with a bad URL in it, or whose
// PublishNode is not in it.
func (c *Config) checkNodes() error {
	if len(c.Nodes) == 0 {
		if c.PublishNode > 1 {
			return fmt.Errorf("-publish-node %d: there is one node (-url lists one)", c.PublishNode)
		}
		return nil
	}
	if c.Mode != ModeFanout {
		return errors.New("-url takes several URLs (the nodes of a cluster) in fanout only")
	}
	if len(c.Nodes) > MaxNodes {
		return fmt.Errorf("-url lists %d nodes, at most %d", len(c.Nodes), MaxNodes)
	}
	for _, u := range c.Nodes {
		if err := checkURL(u, c.AllowRemote); err != nil {
			return err
		}
	}
	if c.PublishNode < 1 || c.PublishNode > len(c.Nodes) {
		return fmt.Errorf("-publish-node must be within 1..%d (the nodes -url lists), got %d", len(c.Nodes), c.PublishNode)
	}
	if c.URL != c.Nodes[c.PublishNode-1] {
		return errors.New("URL must be the publisher's node, Nodes[PublishNode-1]: leave it empty")
	}
	if len(c.Nodes) > 1 && c.Subscribers < len(c.Nodes)-1 {
		return fmt.Errorf("-subscribers %d: fewer than the %d nodes that take subscribers", c.Subscribers, len(c.Nodes)-1)
	}
	return nil
}

// urls is every URL the run dials.
func (c *Config) urls() []string {
	if len(c.Nodes) > 0 {
		return c.Nodes
	}
	return []string{c.URL}
}

// checkURL accepts ws:// and wss:// URLs, on a loopback host unless remote is allowed.
func checkURL(raw string, remote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad -url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("-url must start with ws:// or wss://, got %q", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("-url %q has no host", raw)
	}
	if remote {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-url host %q is not a loopback address; pass -allow-remote to load another machine", host)
	}
	return nil
}

func allIPv4Loopback(urls []string) bool {
	for _, u := range urls {
		if !isIPv4Loopback(u) {
			return false
		}
	}
	return true
}

func isIPv4Loopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.To4() != nil && ip.IsLoopback()
}
