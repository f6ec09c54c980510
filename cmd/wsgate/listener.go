package main

import (
	"container/list"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate"
)

// httpConns bounds the sockets of the HTTP side: every connection accepted and not yet upgraded
// to a WebSocket (page and health requests, idle keep-alives, handshakes in progress). Upgraded
// connections leave it when net/http hands them over, and are wsgate.Server's to bound
// (-max-connections, -max-connections-per-ip): the process holds at most max + -max-connections
// sockets.
//
// At the cap, the connection idle the longest between two requests (a keep-alive) is closed to
// make room, as nginx reclaims keep-alive connections; with none idle, the new one is closed at
// once. An address with maxPerIP connections has its next ones closed at once. Refusals are
// counted and logged at most once per logEvery.
//
// Accept runs on http.Server's accepting goroutine; ConnState on each connection's own. Both
// take mu, and neither closes a socket while holding it.
type httpConns struct {
	net.Listener
	max, maxPerIP int
	log           *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]*httpConn // accepted and neither closed nor hijacked
	perIP map[netip.Prefix]int
	idle  list.List // of *httpConn, idle the longest first

	refusedFull, refusedIP, reclaimed atomic.Uint64 // since start
	lastLog                           time.Time     // Accept's own
	loggedFull, loggedIP              uint64        // Accept's own: counts at lastLog
}

// httpConn is one connection of the HTTP side.
type httpConn struct {
	c    net.Conn
	key  netip.Prefix
	idle *list.Element // in httpConns.idle while idle
}

const logEvery = 10 * time.Second

func newHTTPConns(ln net.Listener, max, maxPerIP int, log *slog.Logger) *httpConns {
	return &httpConns{Listener: ln, max: max, maxPerIP: maxPerIP, log: log,
		conns: make(map[net.Conn]*httpConn), perIP: make(map[netip.Prefix]int)}
}

// Accept returns the next connection within the bounds, closing those beyond them.
func (l *httpConns) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		reclaim, ok := l.admit(c)
		if reclaim != nil {
			_ = reclaim.Close()
		}
		if ok {
			return c, nil
		}
		_ = c.Close()
		l.logRefusals()
	}
}

// admit counts c in, or says it is refused; it may return an idle connection to close first.
func (l *httpConns) admit(c net.Conn) (reclaim net.Conn, ok bool) {
	key := clientKey(c.RemoteAddr())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxPerIP > 0 && key.IsValid() && l.perIP[key] >= l.maxPerIP {
		l.refusedIP.Add(1)
		return nil, false
	}
	if l.max > 0 && len(l.conns) >= l.max {
		front := l.idle.Front()
		if front == nil {
			l.refusedFull.Add(1)
			return nil, false
		}
		old := front.Value.(*httpConn)
		l.forgetLocked(old)
		l.reclaimed.Add(1)
		reclaim = old.c
	}
	l.conns[c] = &httpConn{c: c, key: key}
	if key.IsValid() {
		l.perIP[key]++
	}
	return reclaim, true
}

// connState is http.Server.ConnState: it keeps the idle list, and lets go of connections that
// end or become WebSockets.
func (l *httpConns) connState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hc := l.conns[c]
	if hc == nil { // reclaimed already
		return
	}
	switch st {
	case http.StateIdle:
		if hc.idle == nil {
			hc.idle = l.idle.PushBack(hc)
		}
	case http.StateActive:
		if hc.idle != nil {
			l.idle.Remove(hc.idle)
			hc.idle = nil
		}
	case http.StateHijacked, http.StateClosed:
		l.forgetLocked(hc)
	}
}

func (l *httpConns) forgetLocked(hc *httpConn) {
	delete(l.conns, hc.c)
	if hc.idle != nil {
		l.idle.Remove(hc.idle)
		hc.idle = nil
	}
	if hc.key.IsValid() {
		if l.perIP[hc.key]--; l.perIP[hc.key] <= 0 {
			delete(l.perIP, hc.key)
		}
	}
}

// logRefusals logs the refusals since the last log, at most once per logEvery.
func (l *httpConns) logRefusals() {
	now := time.Now()
	if now.Sub(l.lastLog) < logEvery {
		return
	}
	full, ip := l.refusedFull.Load(), l.refusedIP.Load()
	l.log.Warn("http connections refused", "at_cap", full-l.loggedFull, "per_ip", ip-l.loggedIP,
		"idle_reclaimed_total", l.reclaimed.Load(), "max_http_connections", l.max, "max_http_connections_per_ip", l.maxPerIP)
	l.lastLog, l.loggedFull, l.loggedIP = now, full, ip
}

// clientKey is what a peer is counted by: its IPv4 address, or its IPv6 /64 (one subscriber's
// block). The zero Prefix for a peer without an IP address.
func clientKey(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Prefix{}
	}
	return wsgate.ClientPrefix(ip)
}
