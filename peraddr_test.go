package wsgate_test

import (
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/wsgate/wsgate"
)

// One address cannot take more than MaxConnectionsPerIP: further upgrades from it get 429 with
// Retry-After, while other addresses still connect. Loopback has a whole /8 of source addresses.

// handshakeFrom is handshake from the local address ip (127.0.0.0/8 on loopback).
func handshakeFrom(t *testing.T, ts *testServer, ip string, edit func(http.Header)) (*rawConn, *http.Response) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: ioWait}
	nc, err := d.Dial("tcp", ts.addr())
	if err != nil {
		t.Fatal(err)
	}
	return handshakeOn(t, nc, upgradeRequest(http.MethodGet, ts.addr(), edit), nil)
}

func TestMaxConnectionsPerIP(t *testing.T) {
	ts := startServer(t, echoOrClose, &wsgate.Config{MaxConnectionsPerIP: 2})
	first, resp := handshakeFrom(t, ts, "127.0.0.1", nil)
	first.mustUpgrade(resp)
	second, resp := handshakeFrom(t, ts, "127.0.0.1", nil)
	second.mustUpgrade(resp)
	_, resp = handshakeFrom(t, ts, "127.0.0.1", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third connection from one address: %s, Retry-After %q; want 429 with Retry-After",
			resp.Status, resp.Header.Get("Retry-After"))
	}
	other, resp := handshakeFrom(t, ts, "127.0.0.2", nil)
	other.mustUpgrade(resp)
	first.closeClean()
	waitFor(t, ioWait, "a place for 127.0.0.1 once one of its connections has closed", func() bool {
		_, resp := handshakeFrom(t, ts, "127.0.0.1", nil)
		return resp.StatusCode == http.StatusSwitchingProtocols
	})
	// The 101 is written before the connection is registered: wait for the count.
	waitFor(t, ioWait, "3 connections live", func() bool { return ts.Stats().Connections == 3 })
}

// TestMaxConnectionsPerIPBehindAProxy counts the client X-Forwarded-For names when the peer is a
// trusted proxy, and an IPv6 client by its /64.
func TestMaxConnectionsPerIPBehindAProxy(t *testing.T) {
	ts := startServer(t, echoOrClose, &wsgate.Config{MaxConnectionsPerIP: 1, TrustedProxies: []string{"127.0.0.0/8"}})
	xff := func(v string) func(http.Header) { return set("X-Forwarded-For", v) }
	for _, tc := range []struct {
		xff  string
		want int
	}{
		{"192.0.2.1", http.StatusSwitchingProtocols},
		{"192.0.2.2", http.StatusSwitchingProtocols},
		{"192.0.2.1", http.StatusTooManyRequests},
		{"192.0.2.1, 127.0.0.9", http.StatusTooManyRequests}, // a second trusted hop
		{"192.0.2.3, 192.0.2.1", http.StatusTooManyRequests}, // the client's own claim is left of it
		{"2001:db8::1", http.StatusSwitchingProtocols},
		{"2001:db8::2", http.StatusTooManyRequests}, // same /64
		{"2001:db8:0:1::1", http.StatusSwitchingProtocols},
	} {
		if _, resp := handshakeFrom(t, ts, "127.0.0.1", xff(tc.xff)); resp.StatusCode != tc.want {
			t.Errorf("X-Forwarded-For %s: answered %s, want %d", tc.xff, resp.Status, tc.want)
		}
	}
	// Not from a trusted proxy: X-Forwarded-For is the client's say, ignored.
	untrusted := startServer(t, echoOrClose, &wsgate.Config{MaxConnectionsPerIP: 1})
	rc, resp := handshakeFrom(t, untrusted, "127.0.0.1", xff("192.0.2.1"))
	rc.mustUpgrade(resp)
	if _, resp := handshakeFrom(t, untrusted, "127.0.0.1", xff("192.0.2.2")); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a second connection from one peer claiming another X-Forwarded-For: %s, want 429", resp.Status)
	}
}

// ClientPrefix is the one rule every per-address limit counts by (the Server's, the gateway's,
// the binary's sockets and admin logins): an IPv4-mapped address counts as its IPv4.
func TestClientPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.9":          "203.0.113.9/32",
		"::ffff:203.0.113.9":   "203.0.113.9/32",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
	} {
		if got := wsgate.ClientPrefix(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("ClientPrefix(%s) = %s, want %s", in, got, want)
		}
	}
	if p := wsgate.ClientPrefix(netip.Addr{}); p.IsValid() {
		t.Errorf("ClientPrefix of no address = %s, want the zero Prefix", p)
	}
}
