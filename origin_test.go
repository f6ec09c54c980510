package wsgate_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wsgate/wsgate"
)

// Same-origin is only as good as the Host it compares with: a DNS-rebinding page at
// http://evil.example:P, whose name now resolves to this server, sends Origin and Host that
// agree. AllowedHosts names the hosts the server answers to; the scheme of the origin must be the
// request's.

// hostRequest is a valid handshake for Host host (not the server's address), changed by edit.
func hostRequest(host string, edit func(http.Header)) []byte {
	return upgradeRequest(http.MethodGet, host, edit)
}

// forwarded sets Origin and X-Forwarded-Proto.
func forwarded(origin, proto string) func(http.Header) {
	return func(h http.Header) {
		h.Set("Origin", origin)
		h.Set("X-Forwarded-Proto", proto)
	}
}

func TestDNSRebinding(t *testing.T) {
	open := startServer(t, echoOrClose, nil)
	_, port, _ := net.SplitHostPort(open.addr())
	evil := "evil.example:" + port
	rebound := hostRequest(evil, set("Origin", "http://"+evil))
	if _, resp := handshake(t, open, rebound, nil); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("without AllowedHosts (the documented risk): answered %s, want 101", resp.Status)
	}

	ts := startServer(t, echoOrClose, &wsgate.Config{AllowedHosts: []string{"127.0.0.1", "*.example.com", "localhost:" + port}})
	cases := []struct {
		name string
		req  []byte
		want int
	}{
		{"a rebound page", rebound, http.StatusForbidden},
		{"another host, no Origin", hostRequest(evil, nil), http.StatusForbidden},
		{"the server's address, its own origin", hostRequest(ts.addr(), set("Origin", "http://"+ts.addr())), http.StatusSwitchingProtocols},
		{"a subdomain pattern, any port", hostRequest("a.example.com:9", set("Origin", "http://a.example.com:9")), http.StatusSwitchingProtocols},
		{"the bare domain of a subdomain pattern", hostRequest("example.com", nil), http.StatusForbidden},
		{"a host with its port", hostRequest("LOCALHOST:"+port, set("Origin", "http://localhost:"+port)), http.StatusSwitchingProtocols},
		{"a host on another port", hostRequest("localhost:1", nil), http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, resp, body := handshakeBody(t, ts, tc.req); resp.StatusCode != tc.want {
				t.Errorf("answered %s %q, want %d", resp.Status, body, tc.want)
			}
		})
	}
}

// TestOriginScheme: an https:// page is not the same origin as a plain-http server on the same
// host, nor an http:// page as a TLS one; a trusted proxy's X-Forwarded-Proto says which it was.
func TestOriginScheme(t *testing.T) {
	plain := startServer(t, echoOrClose, nil)
	host := plain.addr()
	runHandshakeCases(t, plain, []handshakeCase{
		{"https origin on plain http", "", set("Origin", "https://"+host), http.StatusForbidden},
		{"http origin on plain http", "", set("Origin", "http://"+host), http.StatusSwitchingProtocols},
		{"X-Forwarded-Proto from an untrusted peer", "", forwarded("https://"+host, "https"), http.StatusForbidden},
	})
	proxied := startServer(t, echoOrClose, &wsgate.Config{TrustedProxies: []string{"127.0.0.0/8"}})
	host = proxied.addr()
	runHandshakeCases(t, proxied, []handshakeCase{
		{"https origin behind a TLS proxy", "", forwarded("https://"+host, "https"), http.StatusSwitchingProtocols},
		{"http origin behind a TLS proxy", "", forwarded("http://"+host, "https"), http.StatusForbidden},
		{"https origin, the proxy says http", "", forwarded("https://"+host, "http"), http.StatusForbidden},
	})
	notUs := startServer(t, echoOrClose, &wsgate.Config{TrustedProxies: []string{"10.0.0.0/8"}})
	host = notUs.addr()
	runHandshakeCases(t, notUs, []handshakeCase{
		{"X-Forwarded-Proto from a peer outside TrustedProxies", "", forwarded("https://"+host, "https"), http.StatusForbidden},
	})

	// Over TLS, raw: the handshake goes through tls.Dial.
	srv, err := wsgate.NewServer(echoOrClose, &wsgate.Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(srv)
	t.Cleanup(func() {
		ctx, cancel := contextWithTimeout(ioWait)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	tlsHost := hs.Listener.Addr().String()
	for origin, want := range map[string]int{"https://" + tlsHost: http.StatusSwitchingProtocols, "http://" + tlsHost: http.StatusForbidden} {
		nc, err := tls.Dial("tcp", tlsHost, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		if _, err := nc.Write(hostRequest(tlsHost, set("Origin", origin))); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("over TLS, Origin %s: answered %s, want %d", origin, resp.Status, want)
		}
	}
}

func TestBadAdmissionConfigIsRefused(t *testing.T) {
	for _, tc := range []struct {
		cfg   wsgate.Config
		field string
	}{
		{wsgate.Config{AllowedHosts: []string{"["}}, "AllowedHosts"},
		{wsgate.Config{TrustedProxies: []string{"10.0.0.0/33"}}, "TrustedProxies"},
		{wsgate.Config{TrustedProxies: []string{"proxy.example"}}, "TrustedProxies"},
		{wsgate.Config{KeepHeaders: []string{"Bad Name"}}, "KeepHeaders"},
		{wsgate.Config{MaxHeaderBytes: -1}, "MaxHeaderBytes"},
	} {
		if _, err := wsgate.NewServer(nil, &tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("NewServer(%+v) = %v; want an error naming %s", tc.cfg, err, tc.field)
		}
	}
}
