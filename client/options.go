package client

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Defaults for the zero fields of Options.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultCloseTimeout     = 5 * time.Second
	DefaultReadLimit        = 16 << 20
)

// Options configures Dial. A nil *Options, or the zero value, is valid: every zero field takes
// the default its comment gives. Dial copies what it uses; changing Options afterwards has no
// effect on the connection.
type Options struct {
	// Header holds extra headers for the upgrade request ("Host" sets the Host line). The headers
	// of the WebSocket handshake itself (Upgrade, Connection, Sec-WebSocket-*) are Dial's: setting
	// one is an error; use Subprotocols and Compression instead. Default: none.
	Header http.Header
	// Origin is sent as the Origin header, as a browser would. Default: none (servers let clients
	// without an Origin in: they are not browsers).
	Origin string
	// Subprotocols are offered to the server in order of preference; Conn.Subprotocol reports the
	// one it chose, "" if it chose none. A server choosing one that was not offered fails the
	// handshake. Default: none.
	Subprotocols []string
	// HandshakeTimeout bounds connecting, the TLS handshake and the HTTP upgrade together (Dial's
	// context may end it earlier). Default 10 s.
	HandshakeTimeout time.Duration
	// CloseTimeout is how long Close waits for the server's close frame. Default 5 s.
	CloseTimeout time.Duration
	// ReadLimit is the largest message, in bytes, the server may send (after decompression); a
	// bigger one closes the connection with 1009. Default 16 MiB.
	ReadLimit int
	// Compression offers permessage-deflate (RFC 7692) without context takeover; messages of 512
	// bytes and more are then compressed if the server accepts. Default off.
	Compression bool
	// TLSConfig is used for wss:// URLs. Default: the system's roots, ServerName from the URL.
	TLSConfig *tls.Config
}

// handshakeHeaders are set by Dial (or by the transport on its behalf); a caller's value would
// be ignored or break the handshake.
var handshakeHeaders = []string{
	"Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version",
	"Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Sec-Websocket-Accept",
}

// withDefaults returns a copy of o (nil allowed) with defaults applied, or an error wrapping
// ErrBadOptions for values that cannot work.
func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
		r.Header = o.Header.Clone()
		r.Subprotocols = append([]string(nil), o.Subprotocols...)
	}
	if r.HandshakeTimeout < 0 || r.CloseTimeout < 0 || r.ReadLimit < 0 {
		return r, fmt.Errorf("%w: negative timeout or limit", ErrBadOptions)
	}
	if r.HandshakeTimeout == 0 {
		r.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if r.CloseTimeout == 0 {
		r.CloseTimeout = DefaultCloseTimeout
	}
	if r.ReadLimit == 0 {
		r.ReadLimit = DefaultReadLimit
	}
	for k := range r.Header {
		for _, h := range handshakeHeaders {
			if strings.EqualFold(k, h) {
				return r, fmt.Errorf("%w: header %s is set by Dial (see Options.Subprotocols, Options.Compression)", ErrBadOptions, k)
			}
		}
	}
	for _, p := range r.Subprotocols {
		if !isToken(p) {
			return r, fmt.Errorf("%w: subprotocol %q is not an HTTP token", ErrBadOptions, p)
		}
	}
	return r, nil
}

// isToken reports whether s is a non-empty HTTP token (RFC 9110 §5.6.2), as a subprotocol must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
