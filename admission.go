package wsgate

import (
	"fmt"
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strings"
)

// Admission: what one upgrade request may cost the server, and what a connection keeps of it.
//
// Bounds, per connection: the request is refused beyond MaxHeaderBytes (default 16 KiB, counted
// as HTTP/2 counts a header list, so 10,000 one-byte headers cost 320 KB and are refused); what
// stays for the connection's life is KeepHeaders' values, at most MaxHeaderBytes, in one string.

// DefaultMaxHeaderBytes is Config.MaxHeaderBytes' default.
const DefaultMaxHeaderBytes = 16 << 10

// DefaultKeepHeaders is Config.KeepHeaders' default: the request headers by which an application
// usually tells who a client is. A browser's WebSocket sends Cookie, Origin, User-Agent,
// Accept-Language and the Sec-WebSocket-Protocol it was given (where some applications carry a
// token) and cannot add others; other clients may send Authorization; proxies add Forwarded,
// X-Forwarded-For, X-Forwarded-Proto and X-Real-Ip. Append to it for headers of your own.
var DefaultKeepHeaders = []string{"Authorization", "Cookie", "Origin", "User-Agent", "Accept-Language",
	"Sec-WebSocket-Protocol", "Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-Ip"}

// headerFieldCost is what each header field costs beside its name and value, as in HTTP/2's
// SETTINGS_MAX_HEADER_LIST_SIZE: the price of holding it.
const headerFieldCost = 32

// admissionDefaults checks the admission fields of c, a Config withDefaults is making, and
// applies their defaults; the slices it keeps are its own copies.
func (c *Config) admissionDefaults() []error {
	var errs []error
	if c.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("wsgate: MaxHeaderBytes must not be negative, got %d", c.MaxHeaderBytes))
	}
	if c.MaxConnectionsPerIP < 0 {
		errs = append(errs, fmt.Errorf("wsgate: MaxConnectionsPerIP must not be negative, got %d", c.MaxConnectionsPerIP))
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	keep := DefaultKeepHeaders
	if c.KeepHeaders != nil { // empty but not nil: keep none
		keep = c.KeepHeaders
	}
	c.KeepHeaders = make([]string, 0, len(keep))
	for _, k := range keep {
		if k != "*" && (k == "" || strings.ContainsAny(k, " \t:,\r\n")) {
			errs = append(errs, fmt.Errorf("wsgate: bad KeepHeaders name %q", k))
			continue
		}
		c.KeepHeaders = append(c.KeepHeaders, http.CanonicalHeaderKey(k))
	}
	c.AllowedHosts = slices.Clone(c.AllowedHosts)
	for _, h := range c.AllowedHosts {
		if _, err := path.Match(strings.ToLower(h), ""); err != nil || h == "" {
			errs = append(errs, fmt.Errorf("wsgate: bad AllowedHosts pattern %q", h))
		}
	}
	c.TrustedProxies = slices.Clone(c.TrustedProxies)
	c.trusted = nil
	for _, p := range c.TrustedProxies {
		pre, err := netip.ParsePrefix(p)
		if a, aerr := netip.ParseAddr(p); aerr == nil {
			pre, err = a.Unmap().Prefix(a.Unmap().BitLen())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("wsgate: bad TrustedProxies entry %q: want an IP address or a CIDR prefix", p))
			continue
		}
		c.trusted = append(c.trusted, pre.Masked())
	}
	return errs
}

// hostAllowed reports whether a request's Host matches AllowedHosts; any does when it is empty.
func (c *Config) hostAllowed(host string) bool {
	if len(c.AllowedHosts) == 0 {
		return true
	}
	host = strings.ToLower(host)
	name := host // without the port
	if i := strings.LastIndexByte(host, ':'); i >= 0 && i > strings.LastIndexByte(host, ']') {
		name = host[:i]
	}
	for _, p := range c.AllowedHosts {
		p = strings.ToLower(p)
		target := name
		if i := strings.LastIndexByte(p, ':'); i >= 0 && i > strings.LastIndexByte(p, ']') {
			target = host // the pattern names a port
		}
		if ok, _ := path.Match(p, target); ok || p == target {
			return true
		}
	}
	return false
}

// originScheme is the scheme of an Origin, with ws and wss as the http and https they stand for.
func originScheme(s string) string {
	switch s = strings.ToLower(s); s {
	case "ws":
		return "http"
	case "wss":
		return "https"
	}
	return s
}

// requestScheme is "https" for a request over TLS, or from a trusted proxy whose
// X-Forwarded-Proto starts with https, and "http" otherwise. The first entry is the one the
// first proxy set; a browser, whose origin is what this is compared with, cannot set it.
func (c *Config) requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if v := r.Header.Get("X-Forwarded-Proto"); v != "" && c.fromTrustedProxy(r) {
		first, _, _ := strings.Cut(v, ",")
		if strings.EqualFold(strings.TrimSpace(first), "https") {
			return "https"
		}
	}
	return "http"
}

// remoteAddr is the address of the request's peer, or the zero Addr.
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (c *Config) trustedAddr(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (c *Config) fromTrustedProxy(r *http.Request) bool {
	return len(c.trusted) > 0 && c.trustedAddr(remoteAddr(r))
}

// clientAddrKey keys the client's address in the context of the request Config.Admit gets.
type clientAddrKey struct{}

// ClientAddr is the address of the client behind an upgrade request, as the Server counts it
// for MaxConnectionsPerIP: the peer's, or behind a TrustedProxies proxy the client's it names.
// Within Config.Admit it is the Server's own finding (so a gateway limits by the same address);
// elsewhere it is the peer's address, proxies not believed. The zero Addr when there is none.
func ClientAddr(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(clientAddrKey{}).(netip.Addr); ok {
		return a
	}
	return remoteAddr(r)
}

// ClientAddr is the address of the client behind r, any request on the Server's listener, as
// the Server finds it for MaxConnectionsPerIP and Config.Admit: the peer's, or behind a
// TrustedProxies proxy the client's it names in X-Forwarded-For. The zero Addr when there is
// none. For limits an application keeps on its other routes (a login form's, say).
func (s *Server) ClientAddr(r *http.Request) netip.Addr { return s.cfg.clientAddr(r) }

// Scheme is the scheme of the client's request, as the Server finds it for its origin checks:
// "https" over TLS, or from a TrustedProxies proxy whose X-Forwarded-Proto says https, and
// "http" otherwise. For what an application sets on its other routes (a cookie's Secure, say).
func (s *Server) Scheme(r *http.Request) string { return s.cfg.requestScheme(r) }

// clientAddr is the client's address: the peer's, or from a trusted proxy the last
// X-Forwarded-For entry that is not itself a trusted proxy (entries left of it are the client's
// own say). The zero Addr if there is none.
func (c *Config) clientAddr(r *http.Request) netip.Addr {
	a := remoteAddr(r)
	if !a.IsValid() || len(c.trusted) == 0 || !c.trustedAddr(a) {
		return a
	}
	xff := r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		entries := strings.Split(xff[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			e, err := netip.ParseAddr(strings.TrimSpace(entries[j]))
			if err != nil {
				return a // a garbled entry: the last proxy that named a good one is the client
			}
			if a = e.Unmap(); !c.trustedAddr(a) {
				return a
			}
		}
	}
	return a
}

// checkSize returns 0, or 414 or 431 for a request over MaxHeaderBytes.
func (c *Config) checkSize(r *http.Request) (int, string) {
	target := r.RequestURI
	if target == "" {
		target = r.URL.RequestURI()
	}
	n := len(target)
	if n > c.MaxHeaderBytes {
		return http.StatusRequestURITooLong, "request target too long"
	}
	n += len("Host") + len(r.Host) + headerFieldCost
	for k, vs := range r.Header {
		for _, v := range vs {
			if n += len(k) + len(v) + headerFieldCost; n > c.MaxHeaderBytes {
				return http.StatusRequestHeaderFieldsTooLarge, "request headers too large"
			}
		}
	}
	if n > c.MaxHeaderBytes {
		return http.StatusRequestHeaderFieldsTooLarge, "request headers too large"
	}
	return 0, ""
}

// handshakeOwn reports the headers of the handshake itself, which a connection never keeps.
func handshakeOwn(name string) bool {
	switch name {
	case "Connection", "Upgrade", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions":
		return true
	}
	return false
}

// connHeader returns what a connection keeps of h for Conn.Header: the KeepHeaders as flat
// name/value pairs, their bytes copied into one string so that nothing else of the request stays
// reachable (a map would cost hundreds of bytes per idle connection, and most connections never
// ask: Conn.Header builds the map on demand).
func (c *Config) connHeader(h http.Header) []string {
	all := false
	for _, k := range c.KeepHeaders {
		all = all || k == "*"
	}
	each := func(f func(name string, vs []string)) {
		if all {
			for k, vs := range h {
				if !handshakeOwn(k) {
					f(k, vs)
				}
			}
			return
		}
		for _, k := range c.KeepHeaders {
			if vs := h[k]; len(vs) > 0 && !handshakeOwn(k) {
				f(k, vs)
			}
		}
	}
	n := 0
	each(func(_ string, vs []string) { n += 2 * len(vs) })
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	each(func(name string, vs []string) {
		for _, v := range vs {
			out = append(out, name, v)
		}
	})
	// Copy what comes from the request into one string: a value may share its allocation with
	// bytes we do not keep. Names from KeepHeaders are the Config's own strings.
	own := func(i int) bool { return i%2 == 1 || all }
	size := 0
	for i, v := range out {
		if own(i) {
			size += len(v)
		}
	}
	var b strings.Builder
	b.Grow(size)
	for i, v := range out {
		if own(i) {
			b.WriteString(v)
		}
	}
	buf, off := b.String(), 0
	for i, v := range out {
		if own(i) {
			out[i] = buf[off : off+len(v)]
			off += len(v)
		}
	}
	return out
}
