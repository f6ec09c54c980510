package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/gateway/events"
	"github.com/wsgate/wsgate/gateway/proxy"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// Deps are what the gateway takes from the program beside its Config.
type Deps struct {
	// Logger, default slog.Default(). Tokens never reach it.
	Logger *slog.Logger
	// Outbox queues the connect and disconnect events of backend.events_url (gateway/events):
	// the broker's, when it has the capability (broker/nats: a lost node's events are
	// delivered by another). Nil: an in-memory one, which dies with the process.
	Outbox broker.Outbox
	// Node names this node in the events (broker.Cluster's Node()). Default: random.
	Node string
	// HTTPClient makes the calls to the backend and the JWKS fetches. Default: their own.
	HTTPClient *http.Client
	// Tracer, when set, makes every backend call (gateway/proxy) and event POST
	// (gateway/events) a client span. Default nil.
	Tracer proxy.Tracer
}

// Gateway is the layer between the binary and the hub: it admits upgrades, identifies
// connections, decides on their requests from the namespaces, counts them per user and per
// address, and calls the backend. Build it with New, give its hooks to the hub with HubOptions,
// bind the hub with Bind, wrap the hub's handler with Handler, and set wsgate.Config.Admit to
// its Admit. It is safe for concurrent use.
type Gateway struct {
	cfg  Config
	log  *slog.Logger
	ns   *namespaces
	hs   *handshakes
	reg  *registry
	auth verifier       // nil without auth.jwt
	be   *proxy.Proxy   // nil without any backend URL
	ev   *events.Sender // nil without backend.events_url

	hub   *hub.Hub // set by Bind
	conns sync.Map // *wsgate.Conn → *connState, for every open connection

	// The message counts of the connections closed so far: Info adds the open ones'.
	closedReceived, closedSent atomic.Uint64

	cluster clusterLink // the user operations across nodes, after Bind
	now     func() time.Time
}

// connState is the gateway's own state of one open connection.
type connState struct {
	mu     sync.Mutex
	user   string              // registered under this user in reg; "" none
	id     *hub.Identity       // raw: from Admit; wsgate.v1: from Connect
	expiry *time.Timer         // raw: closes with 4501 at the identity's expiry
	event  *events.ConnectInfo // the connect event sent: its disconnect is owed
}

// New checks cfg and builds a Gateway: it reads the key files, starts the JWKS cache (stopped
// by Close), and prepares the backend calls. ctx bounds what it waits for at start.
func New(ctx context.Context, cfg *Config, d Deps) (*Gateway, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: *cfg, log: d.Logger, ns: newNamespaces(cfg), hs: newHandshakes(&cfg.Limits),
		reg: newRegistry(), now: time.Now}
	if g.log == nil {
		g.log = slog.Default()
	}
	var err error
	if g.auth, err = newVerifier(ctx, cfg, d.HTTPClient, g.log); err != nil {
		return nil, err
	}
	if g.be, err = newBackend(cfg, d.HTTPClient, d.Tracer); err != nil {
		_ = g.Close(ctx)
		return nil, err
	}
	if cfg.Backend.EventsURL != "" {
		g.ev, err = events.New(ctx, events.Options{URL: cfg.Backend.EventsURL, Outbox: d.Outbox, Node: d.Node,
			Timeout: cfg.Backend.Timeout, HTTPClient: d.HTTPClient, Logger: g.log, Headers: secretHeader(cfg.Backend.Secret),
			Tracer: d.Tracer})
		if err != nil {
			_ = g.Close(ctx)
			return nil, errorf("backend.events_url: %w", err)
		}
	}
	return g, nil
}

// Close stops what New started (the JWKS cache, the cross-node listener, idle connections to
// the backend) and hands the events still queued to the outbox, within ctx: call it after the
// connections have closed, so that their disconnect events are among them.
func (g *Gateway) Close(ctx context.Context) error {
	g.cluster.close()
	var errs []error
	if g.auth != nil {
		errs = append(errs, g.auth.Close())
	}
	if g.be != nil {
		g.be.CloseIdleConnections()
	}
	if g.ev != nil {
		errs = append(errs, g.ev.Close(ctx))
	}
	return errors.Join(errs...)
}

// Config returns the configuration the gateway runs with.
func (g *Gateway) Config() *Config { return &g.cfg }

// HubOptions sets the hub's hooks: Connect, Refresh, ConnectTimeout and RefreshGrace (when auth
// is configured), Authorize, Channel, Publish and RPC (with their backend URLs), and OnConnect.
// The disconnect events come from Handler's OnClose, which knows the close code. The other
// fields are left as they are.
func (g *Gateway) HubOptions(o *hub.Options) {
	if g.cfg.authConfigured() {
		o.Connect = g.connect
		o.Refresh = g.refresh
		o.ConnectTimeout = g.cfg.Auth.ConnectTimeout
		o.RefreshGrace = g.cfg.Auth.RefreshGrace
	}
	o.Authorize = g.authorize
	o.Channel = g.channel
	if g.cfg.Backend.PublishURL != "" {
		o.Publish = g.publish
	}
	if g.cfg.Backend.RPCURL != "" {
		o.RPC = g.rpc
	}
	o.OnConnect = g.onConnect
}

// Bind gives the gateway the hub its hooks serve: the backend API's user operations go through
// it, and across a cluster through its Cluster.
func (g *Gateway) Bind(h *hub.Hub) error {
	g.hub = h
	return g.cluster.start(g, h)
}

// state returns c's gateway state (nil for a connection the gateway's handler did not open).
func (g *Gateway) state(c *wsgate.Conn) *connState {
	if s, ok := g.conns.Load(c); ok {
		return s.(*connState)
	}
	return nil
}

// connect is hub.Options.Connect: the identity of a wsgate.v1 connection, from its connect
// token, or without one from what Admit found in the upgrade request, or from the backend with
// the handshake's cookies; then the connections-per-user cap.
func (g *Gateway) connect(ctx context.Context, c *wsgate.Conn, token string) (*hub.Identity, error) {
	var id *hub.Identity
	var err error
	switch admitted, _ := c.Auth().(*hub.Identity); {
	case token != "" && g.auth != nil:
		id, err = g.verify(ctx, token)
	case token != "" && g.be != nil && g.cfg.Auth.ConnectURL != "":
		id, err = g.be.Connect(ctx, proxy.ConnectRequest{Client: clientOf(c, nil), Token: token})
	case token != "":
		err = &hub.Disconnect{Code: protocol.CloseUnauthorized, Reason: "tokens are not accepted",
			Err: protocol.Errorf(protocol.CodeUnauthorized, "this server verifies no tokens: connect without one")}
	case admitted != nil:
		id = admitted
	case isRefusal(c.Auth()):
		r := c.Auth().(*upgradeRefusal)
		_, err = g.verifyErr(fmt.Errorf("%s: %w", r.from, r.err))
	case g.cfg.Auth.ConnectURL != "":
		id, err = g.be.Connect(ctx, proxy.ConnectRequest{Client: clientOf(c, nil)})
	case g.cfg.Auth.Anonymous:
		id = &hub.Identity{}
	default:
		err = &hub.Disconnect{Code: protocol.CloseUnauthorized, Reason: "token required",
			Err: protocol.Errorf(protocol.CodeUnauthorized, "connect needs a token")}
	}
	if err != nil {
		return nil, err
	}
	if id == nil {
		id = &hub.Identity{} // a backend that answered no one: anonymous
	}
	// An identity already expired (a token within the verifier's leeway past its exp, a backend's
	// expire_at in the past) is refused here, before it is counted under its user: the hub would
	// refuse it anyway.
	if !id.ExpiresAt.IsZero() && !id.ExpiresAt.After(g.now()) {
		return nil, expired(fmt.Errorf("the identity expired at %s", id.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	if !g.register(c, id) {
		return nil, &hub.Disconnect{Code: protocol.CloseConnectionLimit, Reason: "connection limit",
			Err: protocol.Errorf(protocol.CodeConnectionLimit, "user %q has %d connections, the limit", id.User, g.cfg.Limits.ConnectionsPerUser)}
	}
	return id, nil
}

// verify checks a connection token: an expired one closes with 4501 after error 110 (get a
// fresh token and reconnect), any other refusal with 4001 after error 109.
func (g *Gateway) verify(ctx context.Context, token string) (*hub.Identity, error) {
	id, err := g.auth.Verify(ctx, token)
	if err == nil {
		return id, nil
	}
	return g.verifyErr(err)
}

func isRefusal(a any) bool { _, ok := a.(*upgradeRefusal); return ok }

// verifyErr is the answer to a token refused with err.
func (g *Gateway) verifyErr(err error) (*hub.Identity, error) {
	if g.auth.Expired(err) {
		return nil, expired(err)
	}
	return nil, &hub.Disconnect{Code: protocol.CloseUnauthorized, Reason: "invalid token",
		Err: protocol.Errorf(protocol.CodeUnauthorized, "%v", err)}
}

// expired is the answer to an expired identity: error 110, then close 4501 (get a fresh token
// and reconnect).
func expired(err error) *hub.Disconnect {
	return &hub.Disconnect{Code: protocol.CloseTokenExpired, Reason: "token expired",
		Err: protocol.Errorf(protocol.CodeTokenExpired, "%v", err)}
}

// register counts c as its user's; false when the user is at the cap. Anonymous connections
// are not counted. A second call should not come (a connect the hub refuses after this hook
// is closed); should one come, the registration follows the identity given last: c is taken
// from its former user first, so that it counts for, and is reached as, the user it is.
func (g *Gateway) register(c *wsgate.Conn, id *hub.Identity) bool {
	s := g.state(c)
	if s == nil || id == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id = id
	if s.user == id.User {
		return true
	}
	if s.user != "" {
		g.reg.remove(s.user, c)
		s.user = ""
	}
	if id.User == "" {
		return true
	}
	if !g.reg.add(id.User, c, g.cfg.Limits.ConnectionsPerUser) {
		return false
	}
	s.user = id.User
	return true
}

// refresh is hub.Options.Refresh: a fresh token (or the backend) for the same user.
func (g *Gateway) refresh(ctx context.Context, c *wsgate.Conn, id *hub.Identity, token string) (*hub.Identity, error) {
	var nid *hub.Identity
	var err error
	switch {
	case g.auth != nil && token != "":
		nid, err = g.auth.Verify(ctx, token)
		if err != nil {
			code := protocol.CodeUnauthorized
			if g.auth.Expired(err) {
				code = protocol.CodeTokenExpired
			}
			return nil, protocol.Errorf(code, "%v", err)
		}
	case g.cfg.Auth.RefreshURL != "":
		if nid, err = g.be.Refresh(ctx, proxy.RefreshRequest{Client: clientOf(c, id), Token: token}); err != nil {
			return nil, err
		}
	default:
		return nil, protocol.Errorf(protocol.CodeNotAvailable, "refresh needs a token")
	}
	if id != nil && nid.User != id.User {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "the token is for another user")
	}
	return nid, nil
}

// onConnect is hub.Options.OnConnect, and the open of an identified raw connection: the
// connect event. Its disconnect event follows from the handler's OnClose, which knows the close
// code (hub.Options.OnDisconnect does not).
func (g *Gateway) onConnect(c *wsgate.Conn, id *hub.Identity) {
	if g.ev == nil {
		return
	}
	s := g.state(c)
	if s == nil {
		return
	}
	ci := clientOf(c, id)
	info := events.ConnectInfo{Client: ci.Name, User: ci.User, Transport: ci.Transport, Remote: ci.Remote, Time: g.now()}
	s.mu.Lock()
	s.event = &info
	s.mu.Unlock()
	g.ev.Connected(info)
}

// disconnected sends the disconnect event owed for a connection that ended with err.
func (g *Gateway) disconnected(info *events.ConnectInfo, err error) {
	di := events.DisconnectInfo{ConnectInfo: *info, Code: int(wsgate.CloseAbnormal)}
	var ce *wsgate.CloseError
	if errors.As(err, &ce) {
		di.Code, di.Reason = int(ce.Code), ce.Reason
	}
	g.ev.Disconnected(di)
}

// Handler wraps the hub's handler (next) to keep the gateway's state of every connection: its
// place in the user registry, the expiry of a raw connection's identity (closed with 4501), and
// the events of raw connections (wsgate.v1 ones come from the hub's hooks).
func (g *Gateway) Handler(next wsgate.Handler) wsgate.Handler {
	return &handler{g: g, next: next}
}

type handler struct {
	g    *Gateway
	next wsgate.Handler
}

func (h *handler) OnOpen(c *wsgate.Conn) {
	g := h.g
	s := &connState{}
	g.conns.Store(c, s)
	if c.Subprotocol() != protocol.Subprotocol {
		if id, _ := c.Auth().(*hub.Identity); id != nil {
			if !g.register(c, id) {
				// Admit counted, but others opened meanwhile: the cap holds.
				_ = c.Close(protocol.CloseConnectionLimit, "connection limit")
			} else {
				if !id.ExpiresAt.IsZero() {
					s.mu.Lock()
					s.expiry = time.AfterFunc(id.ExpiresAt.Sub(g.now()), func() {
						_ = c.Close(protocol.CloseTokenExpired, "token expired")
					})
					s.mu.Unlock()
				}
				g.onConnect(c, id)
			}
		}
	}
	h.next.OnOpen(c)
}

func (h *handler) OnMessage(c *wsgate.Conn, m wsgate.Message) { h.next.OnMessage(c, m) }

func (h *handler) OnClose(c *wsgate.Conn, err error) {
	h.next.OnClose(c, err)
	g := h.g
	s := g.state(c)
	st := c.Stats()
	g.closedReceived.Add(st.Received)
	g.closedSent.Add(st.Sent)
	g.conns.Delete(c)
	if s == nil {
		return
	}
	s.mu.Lock()
	user, ev, t := s.user, s.event, s.expiry
	s.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	if user != "" {
		g.reg.remove(user, c)
	}
	if ev != nil {
		g.disconnected(ev, err)
	}
}

// errorf builds the gateway's own errors.
func errorf(format string, args ...any) error {
	return fmt.Errorf("gateway: "+format, args...)
}
