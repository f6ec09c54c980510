package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// Defaults for Options' zero fields.
const (
	DefaultMaxSubscriptions = 128
	DefaultMaxDataSize      = 64 << 10
	DefaultPingInterval     = 25 * time.Second
	DefaultRecoverLimit     = 1000
	DefaultRequestTimeout   = 5 * time.Second
)

// Options configure a Hub; the zero value works.
type Options struct {
	// Authorize decides whether c may subscribe to, publish on, or read the presence or history of
	// channel; an error refuses with protocol.CodeForbidden and the error's text. Default: allow.
	// It is called on the connection's reader goroutine, without hub locks held.
	Authorize func(ctx context.Context, c *wsgate.Conn, op protocol.Op, channel string) error
	// UserID names the user behind a connection, for presence. Default: none.
	UserID func(c *wsgate.Conn) string
	// MaxSubscriptions per connection. Default 128.
	MaxSubscriptions int
	// MaxDataSize bounds a publication's data in bytes. Default 64 KiB.
	MaxDataSize int
	// PingInterval is the period of the {"push":"ping"} sent to every wsgate.v1 connection, by
	// which clients that cannot see WebSocket pings (browsers) notice a dead link. Default 25 s;
	// negative disables.
	PingInterval time.Duration
	// RecoverLimit bounds the publications a recovering subscribe may replay. Default 1000.
	RecoverLimit int
	// RequestTimeout bounds the broker calls of one request. Default 5 s.
	RequestTimeout time.Duration
	// Logger, default slog.Default().
	Logger *slog.Logger
}

// Hub routes publications between channels and the connections subscribed to them.
type Hub struct {
	opts   Options
	broker Broker

	mu       sync.RWMutex // guards channels, clients, closed
	channels map[string]*channel
	clients  map[*client]struct{}
	closed   bool

	ping     *wsgate.PreparedMessage
	stopPing chan struct{}
	pingDone chan struct{}
}

// New starts a Hub on broker (nil: the caller must not publish; use broker/memory for one process).
func New(ctx context.Context, broker Broker, opts *Options) (*Hub, error) {
	if broker == nil {
		return nil, errors.New("hub: a Broker is required (broker/memory for one process)")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxSubscriptions < 0 || o.MaxDataSize < 0 || o.RecoverLimit < 0 || o.RequestTimeout < 0 {
		return nil, errors.New("hub: Options fields must not be negative")
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.MaxDataSize == 0 {
		o.MaxDataSize = DefaultMaxDataSize
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.RecoverLimit == 0 {
		o.RecoverLimit = DefaultRecoverLimit
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ping, _ := wsgate.NewPreparedMessage(wsgate.Text, protocol.PingPush)
	h := &Hub{opts: o, broker: broker, channels: map[string]*channel{}, clients: map[*client]struct{}{},
		ping: ping, stopPing: make(chan struct{}), pingDone: make(chan struct{})}
	if err := broker.Start(ctx, h.deliver); err != nil {
		return nil, fmt.Errorf("hub: starting broker: %w", err)
	}
	go h.pinger() // owner: the Hub; stopped by Close
	return h, nil
}

// Close stops the hub's pinger and the broker. Connections are the wsgate.Server's to close.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	close(h.stopPing)
	<-h.pingDone
	return h.broker.Close(ctx)
}

func (h *Hub) pinger() {
	defer close(h.pingDone)
	if h.opts.PingInterval < 0 {
		<-h.stopPing
		return
	}
	t := time.NewTicker(h.opts.PingInterval)
	defer t.Stop()
	var buf []*client
	for {
		select {
		case <-h.stopPing:
			return
		case <-t.C:
			h.mu.Lock()
			for c := range h.clients {
				buf = append(buf, c)
			}
			h.mu.Unlock()
			for _, c := range buf {
				_ = c.conn.SendPrepared(h.ping)
			}
			clear(buf)
			buf = buf[:0]
		}
	}
}

// Publish publishes JSON data on channel from the server side, as a client's publish would,
// without authorization.
func (h *Hub) Publish(ctx context.Context, channel string, data []byte) (protocol.Position, error) {
	if err := protocol.ValidChannel(channel); err != nil {
		return protocol.Position{}, err
	}
	if !json.Valid(data) {
		return protocol.Position{}, protocol.Errorf(protocol.CodeBadRequest, "data is not JSON")
	}
	if len(data) > h.opts.MaxDataSize {
		return protocol.Position{}, protocol.Errorf(protocol.CodeTooLarge, "data of %d bytes, limit %d", len(data), h.opts.MaxDataSize)
	}
	return h.broker.Publish(ctx, channel, append([]byte(nil), data...))
}

// History returns a channel's history after since (nil: the latest limit publications).
func (h *Hub) History(ctx context.Context, channel string, since *protocol.Position, limit int) (HistoryResult, error) {
	if err := protocol.ValidChannel(channel); err != nil {
		return HistoryResult{}, err
	}
	return h.broker.History(ctx, channel, since, limit)
}

// Presence lists the connections subscribed to channel on this node.
func (h *Hub) Presence(channel string) []protocol.ClientInfo {
	h.mu.RLock()
	ch := h.channels[channel]
	h.mu.RUnlock()
	if ch == nil {
		return []protocol.ClientInfo{}
	}
	return ch.presence()
}

// Subscribe subscribes a wsgate.v1 connection to channel from the server side, without
// authorization; the client receives publications as if it had subscribed itself.
func (h *Hub) Subscribe(ctx context.Context, c *wsgate.Conn, channel string) error {
	cl, ok := c.Data().(*client)
	if !ok || cl.hub != h {
		return errors.New("hub: not a wsgate.v1 connection of this hub")
	}
	if err := protocol.ValidChannel(channel); err != nil {
		return err
	}
	_, perr := h.subscribe(ctx, cl, channel, nil, false, 0)
	if perr != nil {
		return perr
	}
	return nil
}

// Handler serves wsgate.v1 connections and passes every other connection to app (nil: raw
// connections get no handler calls).
func (h *Hub) Handler(app wsgate.Handler) wsgate.Handler { return &handler{h: h, app: app} }

// connID is the stable name of a connection in presence.
func connID(c *wsgate.Conn) string { return strconv.FormatUint(c.ID(), 10) }
