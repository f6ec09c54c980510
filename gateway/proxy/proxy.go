package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// Defaults for Config's zero fields.
const (
	DefaultTimeout          = 3 * time.Second
	DefaultRetries          = 2
	DefaultBackoff          = 50 * time.Millisecond
	DefaultMaxBackoff       = time.Second
	DefaultMaxResponseBytes = 64 << 10
	DefaultMaxChannels      = hub.DefaultMaxSubscriptions
	DefaultMaxDataSize      = hub.DefaultMaxDataSize
	// DefaultMaxIdleConnsPerHost is the idle connections the default client keeps to the
	// backend: net/http's default of 2 would open and close a TCP connection per call under
	// a burst of connects.
	DefaultMaxIdleConnsPerHost = 64
	// DefaultMaxConnsPerHost bounds the connections the default client opens to the backend:
	// a flood of connects waits for one of them (within each call's ctx) rather than opening a
	// connection each, so the backend sees at most this many calls at once from a node.
	DefaultMaxConnsPerHost = 256
)

// DefaultForwardHeaders are the handshake headers forwarded by default: what identifies a
// browser's user (its session cookie, an Authorization a non-browser client set) and where it
// comes from.
var DefaultForwardHeaders = []string{"Cookie", "Authorization", "Origin", "User-Agent", "X-Forwarded-For", "X-Real-Ip"}

// Endpoint configures one of the backend's calls.
type Endpoint struct {
	// URL the call is POSTed to. Default "": the call is not configured, and its method
	// answers protocol.CodeNotAvailable. Put secrets in Config.Headers, not in the URL.
	URL string
	// Timeout bounds one attempt: sending the request and reading the whole answer. Default
	// DefaultTimeout (3 s). The caller's ctx bounds the call as a whole, retries included.
	Timeout time.Duration
	// Retries is how many more attempts are made after a network error, an attempt that timed
	// out, or a 502, 503 or 504; each after a backoff (Config.Backoff), and only while the
	// caller's ctx leaves time for it. Default DefaultRetries (2); negative: none. A publish is
	// retried only when the backend cannot have seen it (see the package doc), and an rpc is
	// retried like a connect: its methods should be idempotent, or its Retries negative.
	Retries int
}

// Config configures a Proxy; the zero value is valid and configures no call.
type Config struct {
	// The calls, each optional: Connect and Refresh give a connection its identity, Subscribe
	// allows a subscription, Publish allows (or rewrites) a client's publication, RPC answers
	// an rpc request.
	Connect, Refresh, Subscribe, Publish, RPC Endpoint
	// Backoff is the wait before the first retry, doubled before each next one up to
	// MaxBackoff; each wait is drawn at random in [d/2, d] so that the retries of many
	// connections do not arrive together. Defaults 50 ms and 1 s.
	Backoff, MaxBackoff time.Duration
	// ForwardHeaders names the headers of the client's handshake (Client.Header) sent to the
	// backend, as HTTP headers of the call and in its body's "headers". Default
	// DefaultForwardHeaders; an empty list that is not nil forwards none. Hop-by-hop headers
	// (Connection, Upgrade, Proxy-*, ...), the handshake's Sec-WebSocket-* and the body's own
	// (Content-Type, Content-Length, ...) are refused by New, and so are the headers that the
	// client's Connection header names, call by call.
	ForwardHeaders []string
	// Headers are added to every call (a secret by which the backend knows wsgate). They win
	// over a forwarded header of the same name, which then still comes in the body's
	// "headers". Default none.
	Headers http.Header
	// MaxResponseBytes bounds the answer's body: a longer one is a bad answer, and the client
	// stops reading at the bound (the connection to the backend is then closed, not reused).
	// Default DefaultMaxResponseBytes (64 KiB), or MaxDataSize + 4 KiB when that is more, so
	// that data of MaxDataSize fits with its envelope.
	MaxResponseBytes int
	// MaxChannels bounds the channels of a connect or refresh answer. Default
	// DefaultMaxChannels (128, the hub's default subscriptions per connection).
	MaxChannels int
	// MaxDataSize bounds the data of a publish answer (the replacement) and of an rpc answer.
	// Default DefaultMaxDataSize (64 KiB, the hub's default bound on a publication).
	MaxDataSize int
	// Client makes the calls. The Proxy uses a copy of it that follows no redirect (a 3xx is a
	// bad answer) and has no cookie jar (the calls carry the clients' cookies, never cookies
	// kept from earlier answers). Default: a client of its own on a clone of
	// http.DefaultTransport with DefaultMaxIdleConnsPerHost and DefaultMaxConnsPerHost.
	Client *http.Client
}

// Proxy makes the calls of a Config to the backend. It is safe for concurrent use; it holds no
// per-call state, and no goroutine of its own.
type Proxy struct {
	cfg     Config
	client  *http.Client
	forward []string    // canonical names of ForwardHeaders
	static  http.Header // Headers, canonical

	counters [len(Hooks)]hookCounters // metrics.go
}

// ErrConfig is wrapped by New's error when a Config cannot work.
var ErrConfig = errors.New("proxy: invalid Config")

// New checks cfg and returns a Proxy for it.
func New(cfg Config) (*Proxy, error) {
	p := &Proxy{cfg: cfg}
	c := &p.cfg
	for _, e := range []struct {
		name string
		ep   *Endpoint
	}{{"Connect", &c.Connect}, {"Refresh", &c.Refresh}, {"Subscribe", &c.Subscribe}, {"Publish", &c.Publish}, {"RPC", &c.RPC}} {
		if e.ep.URL != "" && !strings.HasPrefix(e.ep.URL, "http://") && !strings.HasPrefix(e.ep.URL, "https://") {
			return nil, fmt.Errorf("%w: %s.URL must be an http:// or https:// URL", ErrConfig, e.name)
		}
		if e.ep.URL != "" {
			if _, err := http.NewRequest(http.MethodPost, e.ep.URL, nil); err != nil {
				return nil, fmt.Errorf("%w: %s.URL: %v", ErrConfig, e.name, err)
			}
		}
		if e.ep.Timeout < 0 {
			return nil, fmt.Errorf("%w: %s.Timeout is negative", ErrConfig, e.name)
		}
		if e.ep.Timeout == 0 {
			e.ep.Timeout = DefaultTimeout
		}
		if e.ep.Retries == 0 {
			e.ep.Retries = DefaultRetries
		}
	}
	if c.Backoff < 0 || c.MaxBackoff < 0 || c.MaxResponseBytes < 0 || c.MaxChannels < 0 || c.MaxDataSize < 0 {
		return nil, fmt.Errorf("%w: Backoff, MaxBackoff, MaxResponseBytes, MaxChannels and MaxDataSize must not be negative", ErrConfig)
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.Backoff)
	}
	if c.MaxChannels == 0 {
		c.MaxChannels = DefaultMaxChannels
	}
	if c.MaxDataSize == 0 {
		c.MaxDataSize = DefaultMaxDataSize
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = max(DefaultMaxResponseBytes, c.MaxDataSize+4<<10)
	}
	fwd := c.ForwardHeaders
	if fwd == nil {
		fwd = DefaultForwardHeaders
	}
	for _, name := range fwd {
		if err := checkHeaderName(name); err != nil {
			return nil, fmt.Errorf("%w: ForwardHeaders: %v", ErrConfig, err)
		}
		p.forward = append(p.forward, http.CanonicalHeaderKey(name))
	}
	p.static = http.Header{}
	for name, vv := range c.Headers {
		if err := checkHeaderName(name); err != nil {
			return nil, fmt.Errorf("%w: Headers: %v", ErrConfig, err)
		}
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, fmt.Errorf("%w: Headers: the value of %q has a CR, LF or NUL", ErrConfig, name)
			}
			p.static.Add(name, v)
		}
	}
	if c.Client != nil {
		cl := *c.Client
		p.client = &cl
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
		tr.MaxConnsPerHost = DefaultMaxConnsPerHost
		p.client = &http.Client{Transport: tr}
	}
	p.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p.client.Jar = nil // a jar would hand one user's session cookie from the backend to the next user
	return p, nil
}

// CloseIdleConnections closes the idle connections to the backend of the Proxy's client (and
// with them their goroutines), as a server does when it shuts down. The Proxy stays usable.
func (p *Proxy) CloseIdleConnections() { p.client.CloseIdleConnections() }

// Client is the connection on whose behalf a call is made, as the backend is told of it.
type Client struct {
	// Name names the connection as presence does ("client" in the body).
	Name string
	// Transport is "wsgate.v1" for a connection speaking the subprotocol, "raw" for one
	// that does not. Default "wsgate.v1".
	Transport string
	// Remote is the client's address ("ip:port"), as the server saw it.
	Remote string
	// User is the connection's user, "" before connect or when anonymous.
	User string
	// Header holds the handshake's headers (wsgate.Conn.Header); those that
	// Config.ForwardHeaders names are sent. The Proxy does not modify it.
	Header http.Header
}

// ClientOf describes c for a call: name is its name in presence, id its identity (nil before
// connect, or when anonymous).
func ClientOf(c *wsgate.Conn, name string, id *hub.Identity) Client {
	cl := Client{Name: name, Transport: "raw", Header: c.Header()}
	if c.Subprotocol() == protocol.Subprotocol {
		cl.Transport = protocol.Subprotocol
	}
	if a := c.RemoteAddr(); a != nil {
		cl.Remote = a.String()
	}
	if id != nil {
		cl.User = id.User
	}
	return cl
}

// ConnectRequest asks the backend who a new connection is.
type ConnectRequest struct {
	Client
	Token string // the connect request's token; "" when the client has none (a cookie session)
}

// RefreshRequest asks the backend to extend a connected identity; Client.User is its user.
type RefreshRequest struct {
	Client
	Token string
}

// SubscribeRequest asks the backend whether a connection may subscribe to Channel.
type SubscribeRequest struct {
	Client
	Channel string
	Token   string // the subscribe request's channel token, if any
}

// PublishRequest asks the backend whether a connection may publish Data to Channel, and with
// which data.
type PublishRequest struct {
	Client
	Channel string
	Data    json.RawMessage // valid JSON (the hub checked it)
}

// RPCRequest forwards an rpc request.
type RPCRequest struct {
	Client
	Method string
	Data   json.RawMessage // valid JSON; nil sends none
}

// Connect asks the backend who the connection is. The identity's user, info, expiry and
// channels are the backend's answer, checked. A refusal is an *Error whose Disconnect closes
// the connection with protocol.CloseUnauthorized after a protocol.CodeUnauthorized reply, unless
// the backend answered another error code or disconnect.
func (p *Proxy) Connect(ctx context.Context, r ConnectRequest) (*hub.Identity, error) {
	w := wireRequest{Token: r.Token}
	res, err := invoke[wireIdentity](ctx, p, callConnect, &p.cfg.Connect, r.Client, &w)
	if err != nil {
		return nil, err
	}
	return p.identity(callConnect, res, "")
}

// Refresh asks the backend to extend the identity of a connected connection. The answer must
// keep the user (an answer without "user" keeps it); "expired": true refuses with
// protocol.CodeTokenExpired, and the connection lapses at its current expiry.
func (p *Proxy) Refresh(ctx context.Context, r RefreshRequest) (*hub.Identity, error) {
	w := wireRequest{Token: r.Token}
	res, err := invoke[wireIdentity](ctx, p, callRefresh, &p.cfg.Refresh, r.Client, &w)
	if err != nil {
		return nil, err
	}
	return p.identity(callRefresh, res, r.User)
}

// Subscribe asks the backend whether the connection may subscribe to the channel: nil allows.
func (p *Proxy) Subscribe(ctx context.Context, r SubscribeRequest) error {
	w := wireRequest{Channel: r.Channel, Token: r.Token}
	_, err := invoke[struct{}](ctx, p, callSubscribe, &p.cfg.Subscribe, r.Client, &w)
	return err
}

// Publish asks the backend whether the connection may publish: nil data and a nil error
// allow the publication unchanged, data replaces it (valid JSON, at most MaxDataSize bytes).
func (p *Proxy) Publish(ctx context.Context, r PublishRequest) (json.RawMessage, error) {
	w := wireRequest{Channel: r.Channel, Data: r.Data}
	res, err := invoke[wireData](ctx, p, callPublish, &p.cfg.Publish, r.Client, &w)
	if err != nil {
		return nil, err
	}
	return p.data(callPublish, res, nil)
}

// RPC forwards an rpc request and returns the backend's answer data: valid JSON of at most
// MaxDataSize bytes, null when the answer had none.
func (p *Proxy) RPC(ctx context.Context, r RPCRequest) (json.RawMessage, error) {
	w := wireRequest{Method: r.Method, Data: r.Data}
	res, err := invoke[wireData](ctx, p, callRPC, &p.cfg.RPC, r.Client, &w)
	if err != nil {
		return nil, err
	}
	return p.data(callRPC, res, json.RawMessage("null"))
}
