package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/gws"
)

// maxErrorBody is how much of a refused upgrade's body Dial reads for HandshakeError.Body.
const maxErrorBody = 1 << 10

// Dial connects to a ws:// or wss:// URL and performs the WebSocket handshake, bounded by ctx and
// Options.HandshakeTimeout; ctx does not matter once Dial has returned. opts may be nil.
//
// The *http.Response is the server's answer to the upgrade request, also when it refused it (its
// Body then holds what Dial read of the body); it is nil when no HTTP answer arrived. A refusal
// is a *HandshakeError with the status and the body's text.
func Dial(ctx context.Context, rawURL string, opts *Options) (*Conn, *http.Response, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" || u.Host == "" {
		return nil, nil, fmt.Errorf("%w: %q", ErrBadURL, rawURL)
	}
	ctx, cancel := context.WithTimeout(ctx, o.HandshakeTimeout)
	defer cancel()

	raw, err := dialTransport(ctx, u, o.TLSConfig)
	if err != nil {
		return nil, nil, fmt.Errorf("client: %w", err)
	}
	w := &wire{Conn: raw}
	w.handshaking.Store(true)
	c := newConn(w, &o)
	// The transport bounds the handshake with its own timer; ours must fire first, or its request
	// writer could be left blocked on a channel nobody reads any more.
	deadline, _ := ctx.Deadline()
	opt := &gws.ClientOption{
		Addr:                rawURL,
		RequestHeader:       requestHeader(&o),
		HandshakeTimeout:    time.Until(deadline) + time.Second,
		ReadMaxPayloadSize:  o.ReadLimit,
		WriteMaxPayloadSize: math.MaxInt,
		CheckUtf8Enabled:    true,
		Logger:              quiet{},
		PermessageDeflate:   gws.PermessageDeflate{Enabled: o.Compression},
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	sock, resp, err := gws.NewClientFromConn(&events{c}, opt, w)
	w.handshaking.Store(false)
	if !stop() { // ctx ended: the socket is closed, whatever the handshake's outcome
		err = fmt.Errorf("client: handshake: %w", context.Cause(ctx))
	} else if err == nil {
		err = checkSubprotocol(resp, o.Subprotocols)
	} else if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		err = refusal(resp, raw, deadline)
	} else if resp != nil {
		err = fmt.Errorf("%w: %v", ErrBadHandshake, err)
	} else {
		err = fmt.Errorf("client: handshake: %w", err)
	}
	if err != nil {
		_ = raw.Close()
		return nil, resp, err
	}
	c.start(sock, resp.Header.Get("Sec-WebSocket-Protocol"))
	return c, resp, nil
}

// dialTransport opens the TCP connection, with TLS on top for wss://.
func dialTransport(ctx context.Context, u *url.URL, cfg *tls.Config) (net.Conn, error) {
	port := u.Port()
	if port == "" {
		port = map[string]string{"ws": "80", "wss": "443"}[u.Scheme]
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil || u.Scheme == "ws" {
		return raw, err
	}
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = u.Hostname()
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return tc, nil
}

// requestHeader is the upgrade request's extra headers. The subprotocols go under a lower-case key:
// the transport then sends them as they are (HTTP header names are case-insensitive) but does not
// treat them as its own, because it would refuse a server that picks none of them, which RFC
// 6455 §4.1 and browsers accept; checkSubprotocol does the checking instead.
func requestHeader(o *Options) http.Header {
	h := o.Header
	if h == nil {
		h = http.Header{}
	}
	if o.Origin != "" {
		h.Set("Origin", o.Origin)
	}
	if len(o.Subprotocols) > 0 {
		h["sec-websocket-protocol"] = []string{strings.Join(o.Subprotocols, ", ")}
	}
	return h
}

// checkSubprotocol fails the handshake if the server chose a subprotocol that was not offered
// (RFC 6455 §4.1).
func checkSubprotocol(resp *http.Response, offered []string) error {
	chosen := resp.Header.Get("Sec-WebSocket-Protocol")
	if chosen == "" || slices.Contains(offered, chosen) {
		return nil
	}
	return fmt.Errorf("%w: the server chose subprotocol %q, which was not offered", ErrBadHandshake, chosen)
}

// refusal builds the HandshakeError for a non-101 answer, reading the start of its body (bounded
// by the handshake's deadline) and leaving it in resp.Body for the caller.
func refusal(resp *http.Response, raw net.Conn, deadline time.Time) error {
	_ = raw.SetReadDeadline(deadline)
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	wait, _ := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return &HandshakeError{StatusCode: resp.StatusCode, Status: resp.Status, Body: bodyText(body), RetryAfter: wait}
}

// quiet drops the transport's log lines: errors reach the caller as values instead.
type quiet struct{}

func (quiet) Error(...any) {}
