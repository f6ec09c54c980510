package wsgate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/gws"
)

// Server is an http.Handler that upgrades requests to WebSocket connections and runs them with a
// Handler. Mount it on any route; it keeps its own registry of live connections, because
// http.Server.Shutdown does not track hijacked ones: call Server.Shutdown too.
type Server struct {
	cfg       Config
	handler   Handler
	upgraders []*gws.Upgrader // one per subprotocol, in cfg.Subprotocols order; the last for none
	tick      time.Duration
	parkAfter int64 // Config.ParkAfter in nanoseconds, rounded up to tick; -1: never park

	clock   atomic.Int64 // coarse unix nanoseconds, advanced by the heartbeat
	nextID  atomic.Uint64
	live    atomic.Int64 // connections reserved, registered or lingering; lower it with s.release
	closing atomic.Bool
	gone    chan struct{}     // closed when live falls to 0 while closing (Shutdown waits on it)
	ending  ending            // shutdown.go
	rate    *handshakeLimiter // MaxHandshakeRate, nil without one (shed.go)

	accepted, rejected, dropped, panics atomic.Uint64
	metrics                             serverMetrics // metrics.go

	shards [connShards]connShard
	addrs  addrCounts // live connections per client address, with MaxConnectionsPerIP

	goroutines sync.WaitGroup // every reader and writer goroutine, the heartbeat and the poller

	poll    poller       // park_linux.go: the epoll instance of parked connections
	parked  atomic.Int64 // connections parked now
	wakeups atomic.Uint64
	readers readerPool // readers.go: the readers of woken connections, at most Config.MaxReaders
	// parkFailed is set once a connection could not be parked (its warning is logged once).
	parkFailed atomic.Bool

	hbMu      sync.Mutex
	hbStarted bool
	hbStop    chan struct{}
	hbDone    chan struct{}
}

const connShards = 32

type connShard struct {
	mu   sync.Mutex
	m    map[uint64]*Conn
	gone connTotals // the counters of the shard's ended connections (Server.Metrics)
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
		gone: make(chan struct{}), rate: newHandshakeLimiter(c.MaxHandshakeRate)}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]*Conn)
	}
	s.clock.Store(time.Now().UnixNano())
	s.tick = min(heartbeatTick(c.PingInterval, c.PongTimeout), messageTimeoutTick(c.MessageTimeout))
	s.parkAfter = parkAfterOf(c.ParkAfter, s.tick)
	s.readers.max = c.MaxReaders
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
	if s.rate != nil && isProbe(r) && s.answerProbe(w, r) {
		return
	}
	if status, msg := s.cfg.checkSize(r); status != 0 {
		s.reject(w, r, status, msg)
		return
	}
	if status, msg := checkHandshake(w, r); status != 0 {
		s.reject(w, r, status, msg)
		return
	}
	if !s.cfg.hostAllowed(r.Host) {
		s.reject(w, r, http.StatusForbidden, "host not allowed")
		return
	}
	if !s.cfg.originAllowed(r.Header.Get("Origin"), r.Host, s.cfg.requestScheme(r)) {
		s.reject(w, r, http.StatusForbidden, "origin not allowed")
		return
	}
	// The node's handshake rate is spent only by handshakes that passed the checks above, which
	// cost nothing to make; one refused after it by a per-address limit (429) gives its token
	// back, so that a flooding address refused by its own bucket does not spend the others'.
	if s.rate != nil {
		if wait := s.rate.take(); wait > 0 {
			s.shed(w, r, wait)
			return
		}
	}
	slot, ok := s.reserveAddr(r)
	if !ok {
		s.rate.refund()
		w.Header().Set("Retry-After", retryAfter)
		s.reject(w, r, http.StatusTooManyRequests, "too many connections from this address")
		return
	}
	if n := s.live.Add(1); s.cfg.MaxConnections > 0 && n > int64(s.cfg.MaxConnections) {
		s.unreserve(slot)
		s.reject(w, r, http.StatusServiceUnavailable, "too many connections")
		return
	}
	// Counted in live from here, so a Shutdown that began after the check above waits for this
	// connection; one that began before it is seen here. (closing is set before live is read.)
	if s.closing.Load() {
		s.unreserve(slot)
		s.reject(w, r, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	var auth any
	if s.cfg.Admit != nil {
		var err error
		ar := r.WithContext(context.WithValue(r.Context(), clientAddrKey{}, s.cfg.clientAddr(r)))
		if auth, err = s.cfg.Admit(ar); err != nil {
			s.unreserve(slot)
			if re := (*RejectError)(nil); errors.As(err, &re) && re.Status == http.StatusTooManyRequests {
				s.rate.refund()
			}
			s.refuse(w, r, err)
			return
		}
	}
	idx, proto := s.selectSubprotocol(r.Header)
	netConn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.unreserve(slot)
		s.reject(w, r, http.StatusInternalServerError, "connection cannot be upgraded")
		return
	}
	c := &Conn{srv: s, id: s.nextID.Add(1), header: s.cfg.connHeader(r.Header), proto: uint16(idx), addr: slot, auth: auth}
	wc := &c.wire
	wc.Conn, wc.c = netConn, c
	if sc, ok := netConn.(*net.TCPConn); ok && rawWrites {
		wc.raw, _ = sc.SyscallConn()
	}
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		wc.pre = append([]byte(nil), p...)
	}
	sock, err := s.upgraders[idx].UpgradeFromConn(wc, bufio.NewReaderSize(wc, 4096), transportRequest(r, proto))
	if err != nil {
		s.unreserve(slot)
		s.rejected.Add(1)
		s.metrics.handshake(0) // the transport answered, or the socket failed: "other"
		s.cfg.Logger.Debug("wsgate: upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	wc.framed.Store(true)
	c.sock = sock
	c.lastRead.Store(s.clock.Load())
	sock.Session().(*session).c = c
	s.accepted.Add(1)
	s.metrics.handshake(http.StatusSwitchingProtocols)
	s.register(c)
	s.goroutines.Add(1)
	go func() { // owner: the Server; ends when the connection parks (park.go) or ends (finish runs on it)
		defer s.goroutines.Done()
		c.serve()
	}()
}

// reject answers a refused handshake and closes the HTTP connection after it: a client refused
// has nothing more to ask on it, and the socket with its buffers would stay for the http.Server's
// idle timeout (none by default).
func (s *Server) reject(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.rejected.Add(1)
	s.metrics.handshake(status)
	w.Header().Set("Connection", "close")
	s.cfg.Logger.Debug("wsgate: handshake rejected", "remote", r.RemoteAddr, "status", status, "reason", msg,
		"origin", r.Header.Get("Origin"))
	http.Error(w, "websocket: "+msg, status)
}

// refuse answers an upgrade that Config.Admit refused with err.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var re *RejectError
	if !errors.As(err, &re) {
		s.cfg.Logger.Info("wsgate: upgrade refused by Admit", "remote", r.RemoteAddr, "err", err)
		s.reject(w, r, http.StatusForbidden, "forbidden")
		return
	}
	if re.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((re.RetryAfter+time.Second-1)/time.Second), 10))
	}
	status := re.Status
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	s.reject(w, r, status, re.Message)
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
	folded := c.ctr.totals()
	sh.gone.plus(folded) // under the lock Metrics reads under: counted once, never going back
	sh.mu.Unlock()
	s.ending.add(c, folded)
}

// unreserve gives back what ServeHTTP reserved for a connection: its place in s.live and, if it
// has one, in its address's count.
func (s *Server) unreserve(slot *addrSlot) {
	s.addrs.release(slot)
	s.release()
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
	Parked      int64  // live connections parked now: no reader goroutine, no read buffer (docs/RUNTIME.md)
	Wakeups     uint64 // times a parked connection got a reader again
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
		Dropped: s.dropped.Load(), Panics: s.panics.Load(), Parked: s.parked.Load(), Wakeups: s.wakeups.Load()}
}
