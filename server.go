package wsgate

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// Server is an http.Handler that upgrades requests to WebSocket connections and runs them with a
// Handler. Mount it on any route; it keeps its own registry of live connections, because
// http.Server.Shutdown does not track hijacked ones: call Server.Shutdown too.
type Server struct {
	cfg       Config
	handler   Handler
	upgraders []*gws.Upgrader // one per subprotocol, in cfg.Subprotocols order; the last for none
	tick      time.Duration

	clock   atomic.Int64 // coarse unix nanoseconds, advanced by the heartbeat
	nextID  atomic.Uint64
	live    atomic.Int64 // connections reserved, registered or lingering; lower it with s.release
	closing atomic.Bool
	gone    chan struct{} // closed when live falls to 0 while closing (Shutdown waits on it)
	ending  ending        // shutdown.go

	accepted, rejected, dropped, panics atomic.Uint64

	shards [connShards]connShard

	goroutines sync.WaitGroup // every reader and writer goroutine, and the heartbeat

	hbMu      sync.Mutex
	hbStarted bool
	hbStop    chan struct{}
	hbDone    chan struct{}
}

const connShards = 32

type connShard struct {
	mu sync.Mutex
	m  map[uint64]*Conn
}

// NewServer returns a Server running h with cfg (nil means all defaults). It fails only for a
// configuration that cannot work, saying which field is wrong.
func NewServer(h Handler, cfg *Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = HandlerFunc(func(*Conn, Message) {})
	}
	s := &Server{cfg: c, handler: h, hbStop: make(chan struct{}), hbDone: make(chan struct{}),
		gone: make(chan struct{})}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]*Conn)
	}
	s.clock.Store(time.Now().UnixNano())
	s.tick = heartbeatTick(c.PingInterval, c.PongTimeout)
	ev := &events{s: s}
	for i := 0; i <= len(c.Subprotocols); i++ {
		opt := &gws.ServerOption{
			ReadMaxPayloadSize:  c.ReadLimit,
			WriteMaxPayloadSize: max(c.SendQueueBytes, 125),
			CheckUtf8Enabled:    true,
			HandshakeTimeout:    c.HandshakeTimeout,
			NewSession:          func() gws.SessionStorage { return &session{} },
			Logger:              gwsLogger{s},
			PermessageDeflate: gws.PermessageDeflate{
				Enabled:   c.Compression,
				Threshold: 512,
			},
		}
		if i < len(c.Subprotocols) {
			opt.SubProtocols = []string{c.Subprotocols[i]}
		}
		s.upgraders = append(s.upgraders, gws.NewUpgrader(ev, opt))
	}
	return s, nil
}

// gwsLogger routes the transport's own error logs to the configured logger.
type gwsLogger struct{ s *Server }

func (l gwsLogger) Error(v ...any) {
	l.s.cfg.Logger.Error("wsgate: transport", "msg", strings.TrimSpace(fmt.Sprint(v...)))
}

// ServeHTTP checks the handshake, answering a precise HTTP status for each failure, and upgrades.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		s.reject(w, r, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	if status, msg := checkHandshake(w, r); status != 0 {
		s.reject(w, r, status, msg)
		return
	}
	if !s.cfg.originAllowed(r.Header.Get("Origin"), r.Host) {
		s.reject(w, r, http.StatusForbidden, "origin not allowed")
		return
	}
	if n := s.live.Add(1); s.cfg.MaxConnections > 0 && n > int64(s.cfg.MaxConnections) {
		s.release()
		s.reject(w, r, http.StatusServiceUnavailable, "too many connections")
		return
	}
	// Counted in live from here, so a Shutdown that began after the check above waits for this
	// connection; one that began before it is seen here. (closing is set before live is read.)
	if s.closing.Load() {
		s.release()
		s.reject(w, r, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	idx, proto := s.selectSubprotocol(r.Header)
	netConn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.release()
		s.reject(w, r, http.StatusInternalServerError, "connection cannot be upgraded")
		return
	}
	c := &Conn{srv: s, id: s.nextID.Add(1), header: connHeader(r.Header), proto: proto}
	wc := &c.wire
	wc.Conn, wc.c = netConn, c
	if sc, ok := netConn.(*net.TCPConn); ok {
		wc.raw, _ = sc.SyscallConn()
	}
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		wc.pre = append([]byte(nil), p...)
	}
	ur := r
	if proto != "" && len(r.Header.Values("Sec-WebSocket-Protocol")) > 1 {
		// The transport reads only the first Sec-WebSocket-Protocol line; RFC 6455 §11.3.4 lets a
		// client send several. Hand it the one we chose, keeping r.Header intact for Conn.Header.
		ur = r.Clone(r.Context())
		ur.Header.Set("Sec-WebSocket-Protocol", proto)
	}
	sock, err := s.upgraders[idx].UpgradeFromConn(wc, bufio.NewReaderSize(wc, 4096), ur)
	if err != nil {
		s.release()
		s.rejected.Add(1)
		s.cfg.Logger.Debug("wsgate: upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	wc.framed.Store(true)
	c.sock = sock
	c.lastRead.Store(s.clock.Load())
	sock.Session().(*session).c = c
	s.accepted.Add(1)
	s.register(c)
	s.goroutines.Add(1)
	go func() { // owner: the Server; ends when the connection does (finish runs on it)
		defer s.goroutines.Done()
		c.serve()
	}()
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.rejected.Add(1)
	s.cfg.Logger.Debug("wsgate: handshake rejected", "remote", r.RemoteAddr, "status", status, "reason", msg,
		"origin", r.Header.Get("Origin"))
	http.Error(w, "websocket: "+msg, status)
}

// connHeader keeps the request headers a connection needs, as flat name/value pairs, leaving out
// the handshake's own: a map costs hundreds of bytes per idle connection, and most connections
// never ask for their headers (Conn.Header builds the map on demand).
func connHeader(h http.Header) []string {
	var out []string
	for k, vs := range h {
		switch k {
		case "Connection", "Upgrade", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions":
			continue
		}
		for _, v := range vs {
			out = append(out, k, v)
		}
	}
	return slices.Clip(out)
}

// checkHandshake validates an opening handshake (RFC 6455 §4.2.1) and returns 0 or the status to
// answer with.
func checkHandshake(w http.ResponseWriter, r *http.Request) (int, string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return http.StatusMethodNotAllowed, "method must be GET"
	}
	if !r.ProtoAtLeast(1, 1) {
		return http.StatusBadRequest, "HTTP/1.1 or later required"
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return http.StatusBadRequest, "not a websocket handshake: 'Connection: Upgrade' and 'Upgrade: websocket' required"
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return http.StatusUpgradeRequired, "unsupported version: Sec-WebSocket-Version must be 13"
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return http.StatusBadRequest, "bad Sec-WebSocket-Key"
	}
	return 0, ""
}

// headerHasToken reports whether the comma-separated header name contains token, case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// selectSubprotocol picks the first of the server's subprotocols the client offered.
func (s *Server) selectSubprotocol(h http.Header) (int, string) {
	offered := h.Values("Sec-WebSocket-Protocol")
	for i, p := range s.cfg.Subprotocols {
		for _, v := range offered {
			for _, t := range strings.Split(v, ",") {
				if strings.TrimSpace(t) == p {
					return i, p
				}
			}
		}
	}
	return len(s.cfg.Subprotocols), ""
}

func (s *Server) shard(id uint64) *connShard { return &s.shards[id%connShards] }

func (s *Server) register(c *Conn) {
	sh := s.shard(c.id)
	sh.mu.Lock()
	sh.m[c.id] = c
	sh.mu.Unlock()
	s.startHeartbeat()
	if s.closing.Load() { // Shutdown began after our check and may have missed us
		_ = c.Close(CloseGoingAway, "server shutting down")
	}
}

// unregister removes an ended connection from the registry; it keeps its place in s.live while it
// lingers (see Server.linger).
func (s *Server) unregister(c *Conn) {
	sh := s.shard(c.id)
	sh.mu.Lock()
	delete(sh.m, c.id)
	sh.mu.Unlock()
	s.ending.add(c)
}

// release gives back a connection's place in s.live, and tells a waiting Shutdown when the last
// one is gone.
func (s *Server) release() {
	if s.live.Add(-1) == 0 && s.closing.Load() {
		s.ending.goneOnce.Do(func() { close(s.gone) })
	}
}

// Conn returns the live connection with the given ID, or nil.
func (s *Server) Conn(id uint64) *Conn {
	sh := s.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[id]
}

// Range calls f for every live connection until f returns false. f runs without any server lock
// held, on a snapshot: connections may close meanwhile.
func (s *Server) Range(f func(*Conn) bool) {
	var buf []*Conn
	for i := range s.shards {
		buf = s.shards[i].snapshot(buf[:0])
		for _, c := range buf {
			if !f(c) {
				return
			}
		}
	}
}

func (sh *connShard) snapshot(buf []*Conn) []*Conn {
	sh.mu.Lock()
	for _, c := range sh.m {
		buf = append(buf, c)
	}
	sh.mu.Unlock()
	return buf
}

// ServerStats counts a server's connections and messages.
type ServerStats struct {
	Connections int64  // live now
	Accepted    uint64 // upgrades completed
	Rejected    uint64 // handshakes refused
	Dropped     uint64 // messages discarded by the slow-consumer policy
	Panics      uint64 // handler panics recovered
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	var n int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += int64(len(sh.m))
		sh.mu.Unlock()
	}
	return ServerStats{Connections: n, Accepted: s.accepted.Load(), Rejected: s.rejected.Load(),
		Dropped: s.dropped.Load(), Panics: s.panics.Load()}
}
